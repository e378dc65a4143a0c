"""The assistant's one LLM path: LangChain ``ChatOpenAI`` over any OpenAI-compatible endpoint.

Backends differ in small, known ways; this adapter absorbs them so the agent never sees them:
- Structured output: vLLM and most servers take ``response_format={"type": "json_schema", ...}``;
  llama-cpp-python's server answers HTTP 500 to that and wants ``{"type": "json_object",
  "schema": ...}``. We try json_schema first and remember, per server, when we had to fall back.
- Tool calls: servers return them natively, or as text in ``content`` when the server's parser and
  the model disagree (vLLM and llama.cpp both do this; the embedded Qwen2.5-Coder-1.5B answers with
  a fenced ``{"name", "arguments"}`` object). We parse both; names not offered are dropped.
- Errors: every failure leaves as a ``shopassist.errors`` exception whose message says what to do.

``response_format`` and ``max_tokens`` travel in ``extra_body``: passed as LangChain kwargs,
``response_format`` would route through the OpenAI SDK's ``.parse()``, which raises on
``finish_reason == "length"`` before we can look at the text; and LangChain renames ``max_tokens``
to ``max_completion_tokens``, which not every OpenAI-compatible server reads. Sending both names
costs nothing and bounds generation everywhere.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypedDict, runtime_checkable

import httpx
import openai
from langchain_core.messages import AIMessage, BaseMessage
from langchain_openai import ChatOpenAI

from assistant.llm.embedded import DEFAULT_ALIAS, EmbeddedServer
from assistant.llm.model import ModelFile, ensure_model
from assistant.llm.parsing import coerce_arguments, first_json_object, tool_calls_from_text
from assistant.llm.settings import LLMSettings
from shopassist.errors import BackendError, ModelBehaviourError, ShopAssistError, UsageError

if TYPE_CHECKING:
    from assistant.llm.daemon import SharedServer

log = logging.getLogger(__name__)

Message = BaseMessage | dict[str, Any] | tuple[str, str]

# Per server (base URL): which response_format works. Shared by every client in the process, so
# the failed json_schema probe is paid once per server, not once per client.
_STRUCTURED_MODE: dict[str, str] = {}
_MODE_LOCK = threading.Lock()
JSON_SCHEMA = "json_schema"
JSON_OBJECT = "json_object"


class ToolCall(TypedDict):
    id: str
    name: str
    arguments: dict[str, Any]


class DroppedCall(TypedDict):
    name: str
    reason: str
    arguments: Any


class ToolReply(tuple[str, list[ToolCall]]):
    """``(text, tool_calls)``, unpackable as a pair, plus ``.dropped``: calls we refused (unknown
    tool names, arguments that are not a JSON object), so the caller can log or show them."""

    dropped: list[DroppedCall]

    def __new__(cls, text: str, tool_calls: list[ToolCall], dropped: list[DroppedCall] | None = None) -> ToolReply:
        self = super().__new__(cls, (text, tool_calls))
        self.dropped = list(dropped or [])
        return self

    @property
    def text(self) -> str:
        return self[0]

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self[1]


@runtime_checkable
class LLM(Protocol):
    """What the agent needs from an LLM; a test fake or another backend plugs in here."""

    def structured(
        self, messages: Sequence[Message], schema: dict[str, Any], *, max_tokens: int, temperature: float = 0
    ) -> dict[str, Any]: ...

    def stream(self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.3) -> Iterator[str]: ...

    def chat_with_tools(
        self,
        messages: Sequence[Message],
        tools: list[dict[str, Any]],
        *,
        tool_choice: str | dict[str, Any] = "auto",
        max_tokens: int = 256,
        temperature: float = 0,
    ) -> ToolReply: ...

    def info(self) -> dict[str, Any]: ...


def _schema_name(schema: dict[str, Any]) -> str:
    title = schema.get("title")
    name = re.sub(r"[^a-zA-Z0-9_-]", "_", title)[:64] if isinstance(title, str) and title else ""
    return name or "answer"


def normalize_tools(tools: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], set[str]]:
    """OpenAI function tools; a bare ``{"name", "parameters"}`` is wrapped. UsageError otherwise."""
    out: list[dict[str, Any]] = []
    names: set[str] = set()
    for tool in tools:
        fn = tool.get("function") if tool.get("type") == "function" else tool
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
            raise UsageError(
                f"Tool {tool!r} is not an OpenAI function schema: expected "
                '{"type": "function", "function": {"name": ..., "parameters": {...}}}.'
            )
        fn = {**fn, "parameters": fn.get("parameters") or {"type": "object", "properties": {}}}
        out.append({"type": "function", "function": fn})
        names.add(fn["name"])
    if not out:
        raise UsageError("chat_with_tools needs at least one tool; call stream() or structured() otherwise.")
    return out, names


def normalize_messages(messages: Sequence[Message]) -> list[Message]:
    if not messages:
        raise UsageError("No messages to send: give at least one {'role': 'user', 'content': ...}.")
    out: list[Message] = []
    for m in messages:
        if isinstance(m, dict) and m.get("content") is None:
            m = {**m, "content": ""}  # an assistant turn with only tool calls
        out.append(m)
    return out


class LLMClient:
    """One OpenAI-compatible chat endpoint (the embedded llama.cpp server, vLLM, any other).

    ``http_client`` lets a test pass a fake server (``httpx.MockTransport``) instead of patching.
    ``server`` is an embedded server this client owns and stops on ``close()``, or its attachment
    to a shared server (``assistant.llm.daemon.SharedServer``), which ``close()`` only detaches.
    """

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        api_key: str | None = None,
        timeout: float = 120.0,
        max_retries: int = 1,
        http_client: httpx.Client | None = None,
        server: EmbeddedServer | SharedServer | None = None,
        model_file: ModelFile | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise UsageError(f"LLM base URL {base_url!r} must start with http:// or https:// (e.g. .../v1).")
        if not model:
            raise UsageError("An LLM model name is needed: set --llm-model or SHOPASSIST_LLM_MODEL.")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self._server = server
        self._model_file = model_file
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        common: dict[str, Any] = {
            "model": model,
            "base_url": self.base_url,
            "api_key": api_key or "not-needed",
            "timeout": timeout,
            "http_client": self._http,
        }
        self._llm = ChatOpenAI(**common, max_retries=max_retries)
        # The json_schema probe must not be retried: a 500 there means "use the other format".
        self._probe_llm = ChatOpenAI(**common, max_retries=0)
        self._closed = False

    # -- lifecycle ---------------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_http:
            self._http.close()
        if self._server is not None:
            self._server.stop()

    def __enter__(self) -> LLMClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def embedded(self) -> bool:
        return self._server is not None

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "base_url": self.base_url,
            "model": self.model,
            "embedded": self.embedded,
            "structured_mode": _STRUCTURED_MODE.get(self.base_url, JSON_SCHEMA),
        }
        if self._server is not None:
            out["running"] = self._server.running
            out["gguf"] = str(self._server.model_path)
            out["sha256"] = self._model_file.sha256 if self._model_file else None
            out["load_seconds"] = self._server.load_seconds
            out["threads"] = self._server.threads
            out["ctx"] = self._server.ctx
            out["shared"] = bool(getattr(self._server, "shared", False))
            if out["shared"]:
                out["server_pid"] = getattr(self._server, "pid", None)
        return out

    # -- structured output -------------------------------------------------------------------------
    def structured(
        self, messages: Sequence[Message], schema: dict[str, Any], *, max_tokens: int, temperature: float = 0
    ) -> dict[str, Any]:
        """A JSON object constrained by ``schema`` (bound arrays with maxItems: small models loop).

        Raises ModelBehaviourError when the text is not a JSON object even after stripping fences
        and taking the first balanced object; the caller repairs or falls back to rules.
        """
        msgs = normalize_messages(messages)
        if not isinstance(schema, dict) or not schema:
            raise UsageError("structured() needs a JSON schema dict, e.g. {'type': 'object', 'properties': {...}}.")
        known = _STRUCTURED_MODE.get(self.base_url)
        mode = known or JSON_SCHEMA
        reply: AIMessage | None = None
        if mode == JSON_SCHEMA:
            json_schema = {"name": _schema_name(schema), "schema": schema, "strict": True}
            try:
                reply = self._invoke(
                    self._llm if known else self._probe_llm,  # retries only once the format is known good
                    msgs,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    extra={"response_format": {"type": JSON_SCHEMA, "json_schema": json_schema}},
                )
            except openai.APIStatusError as exc:
                if not self._rejects_json_schema(exc):
                    raise self._backend_error(exc) from exc
                log.info("%s rejected response_format json_schema (%s); using json_object+schema", self.base_url, exc)
                mode = JSON_OBJECT
            except ShopAssistError:
                raise
            except Exception as exc:
                raise self._backend_error(exc) from exc
            if reply is not None and not known:
                with _MODE_LOCK:
                    _STRUCTURED_MODE[self.base_url] = JSON_SCHEMA
        if reply is None:
            reply = self._call(
                self._llm,
                msgs,
                max_tokens=max_tokens,
                temperature=temperature,
                extra={"response_format": {"type": JSON_OBJECT, "schema": schema}},
            )
            if mode == JSON_OBJECT:
                with _MODE_LOCK:
                    _STRUCTURED_MODE[self.base_url] = JSON_OBJECT
        text = str(reply.text)
        value = first_json_object(text)
        if value is None:
            cut = reply.response_metadata.get("finish_reason") == "length"
            hint = f" (cut off at max_tokens={max_tokens}: raise it or bound the schema's arrays)" if cut else ""
            raise ModelBehaviourError(f"The model's answer is not a JSON object{hint}: {text[:200]!r}")
        return value

    @staticmethod
    def _rejects_json_schema(exc: openai.APIStatusError) -> bool:
        """A 500 (llama-cpp-python's answer), or any 4xx/5xx that names the response format."""
        message = f"{exc.message} {exc.body}".lower()
        names_format = "response_format" in message or "json_schema" in message
        return exc.status_code == 500 or (exc.status_code >= 400 and names_format)

    # -- streaming ---------------------------------------------------------------------------------
    def stream(self, messages: Sequence[Message], *, max_tokens: int, temperature: float = 0.3) -> Iterator[str]:
        """Text deltas as the server produces them (empty deltas skipped)."""
        msgs = normalize_messages(messages)
        self._check_open(max_tokens)
        try:
            for chunk in self._llm.stream(
                msgs, max_tokens=max_tokens, temperature=temperature, extra_body={"max_tokens": max_tokens}
            ):
                text = str(chunk.text)
                if text:
                    yield text
        except ShopAssistError:
            raise
        except Exception as exc:
            raise self._backend_error(exc) from exc

    # -- tools -------------------------------------------------------------------------------------
    def chat_with_tools(
        self,
        messages: Sequence[Message],
        tools: list[dict[str, Any]],
        *,
        tool_choice: str | dict[str, Any] = "auto",
        max_tokens: int = 256,
        temperature: float = 0,
    ) -> ToolReply:
        """``(text, tool_calls)`` where each call is ``{"id", "name", "arguments": dict}``.

        ``tool_choice``: "auto", "required", "none", a tool name, or an OpenAI tool_choice dict.
        "required" with a single tool is sent as that tool by name: same meaning in the OpenAI
        spec, and llama.cpp then stops after the call instead of padding to max_tokens.
        """
        msgs = normalize_messages(messages)
        norm_tools, names = normalize_tools(tools)
        choice: str | dict[str, Any] = tool_choice
        if choice == "required" and len(names) == 1:
            choice = next(iter(names))
        if isinstance(choice, str) and choice not in ("auto", "required", "none"):
            if choice not in names:
                raise UsageError(f"tool_choice {choice!r} is not one of the tools given: {', '.join(sorted(names))}.")
            choice = {"type": "function", "function": {"name": choice}}
        reply = self._call(
            self._llm,
            msgs,
            max_tokens=max_tokens,
            temperature=temperature,
            extra={},
            tools=norm_tools,
            tool_choice=choice,
        )
        text = str(reply.text)
        raw: list[tuple[str, Any, str | None]] = [(c["name"], c["args"], c.get("id")) for c in reply.tool_calls]
        for bad in reply.invalid_tool_calls:
            raw.append((bad.get("name") or "", bad.get("args"), bad.get("id")))
        if not raw and text:
            found, text = tool_calls_from_text(text)
            raw = [(name, args, None) for name, args in found]
        calls: list[ToolCall] = []
        dropped: list[DroppedCall] = []
        for name, args, call_id in raw:
            if name not in names:
                dropped.append({"name": name, "reason": "not one of the tools offered", "arguments": args})
                continue
            parsed = coerce_arguments(args)
            if parsed is None:
                dropped.append({"name": name, "reason": "arguments are not a JSON object", "arguments": args})
                continue
            calls.append({"id": call_id or f"call_{uuid.uuid4().hex[:12]}", "name": name, "arguments": parsed})
        if dropped:
            log.warning("dropped %d tool call(s) from %s: %s", len(dropped), self.base_url, dropped)
        return ToolReply(text, calls, dropped)

    # -- plumbing ----------------------------------------------------------------------------------
    def _invoke(
        self,
        llm: ChatOpenAI,
        msgs: list[Message],
        *,
        max_tokens: int,
        temperature: float,
        extra: dict[str, Any],
        **kwargs: Any,
    ) -> AIMessage:
        self._check_open(max_tokens)
        reply = llm.invoke(
            msgs,
            max_tokens=max_tokens,
            temperature=temperature,
            extra_body={**extra, "max_tokens": max_tokens},
            **kwargs,
        )
        if not isinstance(reply, AIMessage):  # pragma: no cover - ChatOpenAI contract
            raise ModelBehaviourError(f"Unexpected reply type {type(reply).__name__} from {self.base_url}.")
        return reply

    def _check_open(self, max_tokens: int) -> None:
        if self._closed:
            raise UsageError("This LLM client is closed; open a new one with open_llm().")
        if max_tokens < 1:
            raise UsageError(f"max_tokens must be at least 1 (got {max_tokens}).")

    def _call(self, llm: ChatOpenAI, msgs: list[Message], **kwargs: Any) -> AIMessage:
        """``_invoke`` with every failure turned into a shopassist error."""
        try:
            return self._invoke(llm, msgs, **kwargs)
        except ShopAssistError:
            raise
        except Exception as exc:
            raise self._backend_error(exc) from exc

    def _backend_error(self, exc: BaseException) -> ShopAssistError:
        where = f"the LLM server at {self.base_url}"
        fix_url = (
            "The embedded server stopped (`shopassist model stop`, or it ran out of memory); run the command "
            "again, which starts it anew (or use --llm-base-url)."
            if self.embedded
            else "Is vLLM (or another OpenAI-compatible server) running there? Start it, or point "
            "--llm-base-url / SHOPASSIST_LLM_BASE_URL at it (unset it to use the embedded model)."
        )
        if isinstance(exc, openai.APITimeoutError | httpx.TimeoutException):
            return BackendError(
                f"{where} did not answer within {self.timeout:.0f} s. It may be overloaded or generating too long: "
                "lower max_tokens, raise the timeout, or check the server's load."
            )
        if isinstance(exc, openai.APIConnectionError | httpx.TransportError):
            return BackendError(f"Cannot reach {where} ({exc.__cause__ or exc}). {fix_url}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            detail = str(exc.message)[:300]
            if status in (401, 403):
                return BackendError(
                    f"{where} refused the API key (HTTP {status}): set --llm-api-key / SHOPASSIST_LLM_API_KEY."
                )
            if status == 404:
                return BackendError(
                    f"{where} answered 404 for model {self.model!r}: check --llm-model / SHOPASSIST_LLM_MODEL "
                    f"(GET {self.base_url}/models lists them) and that the URL ends in /v1. ({detail})"
                )
            if status == 400 and ("context" in detail.lower() or "too long" in detail.lower()):
                return BackendError(f"The prompt is too long for {where}'s context window: shorten it. ({detail})")
            return BackendError(f"{where} failed with HTTP {status}: {detail}")
        if isinstance(exc, ValueError | TypeError | KeyError) and not isinstance(exc, openai.OpenAIError):
            return UsageError(f"Could not build the LLM request: {exc}. Messages are {{'role', 'content'}} dicts.")
        return BackendError(f"{where} failed: {type(exc).__name__}: {exc}")


def resolve_model(
    base_url: str, api_key: str | None, timeout: float = 10.0, http_client: httpx.Client | None = None
) -> str:
    """The first model a server lists at ``/models``: vLLM needs the served name in every request."""
    client = http_client or httpx.Client(timeout=timeout)
    try:
        response = client.get(
            base_url.rstrip("/") + "/models", headers={"Authorization": f"Bearer {api_key or 'not-needed'}"}
        )
        response.raise_for_status()
        data = response.json().get("data") or []
        if data and isinstance(data[0], dict) and data[0].get("id"):
            return str(data[0]["id"])
    except (httpx.HTTPError, ValueError, AttributeError) as exc:
        raise BackendError(
            f"Cannot list models at {base_url}/models ({exc}). Is vLLM running at {base_url}? Set --llm-base-url, "
            "or name the model with --llm-model / SHOPASSIST_LLM_MODEL."
        ) from exc
    finally:
        if http_client is None:
            client.close()
    raise BackendError(f"{base_url}/models lists no model: set --llm-model / SHOPASSIST_LLM_MODEL.")


def open_llm(
    settings: LLMSettings | None = None, home: Path | str | None = None, *, progress: bool = False
) -> LLMClient:
    """The configured LLM: a remote server when ``base_url`` is set, else the embedded model.

    The embedded path assembles/verifies the packaged GGUF under ``home`` (or checks
    ``settings.gguf``), then, with ``settings.idle_minutes > 0`` (what ``from_env`` and so every CLI
    command uses), attaches to the shared server under ``home`` (``assistant.llm.daemon``: started
    in the background when none is running, reused by later processes, so the model loads once and
    llama.cpp's prompt cache survives between commands); with 0 it starts llama.cpp inside this
    process and the client stops it on close. ``progress`` says on stderr what the slow first-run
    steps are doing and how long they take.
    """
    settings = settings or LLMSettings.from_env()
    if settings.base_url:
        model = settings.model or resolve_model(settings.base_url, settings.api_key)
        return LLMClient(settings.base_url, model, api_key=settings.api_key, timeout=settings.timeout)
    if home is None:
        from shopassist.config import Settings

        home = Settings.from_env().home
    model_file = ensure_model(Path(home), settings.gguf, settings.gguf_sha256, progress=progress)
    alias = settings.model or DEFAULT_ALIAS
    # Two slots, each with its own prompt cache: the intent prompt and the copy prompt alternate
    # every turn, and with one slot each evicts the other's cached prefix (measured 5-9 s vs ~2 s).
    if settings.shared:
        from assistant.llm.daemon import ServerSpec, connect

        spec = ServerSpec(
            gguf=str(model_file.path),
            sha256=model_file.sha256,
            alias=alias,
            threads=settings.threads,
            ctx=settings.ctx * 2,
            parallel=2,
            idle_seconds=settings.idle_minutes * 60,
        )
        shared = connect(spec, Path(home), progress=progress)
        try:
            return LLMClient(
                shared.base_url,
                alias,
                api_key=shared.token,
                timeout=settings.timeout,
                server=shared,
                model_file=model_file,
                max_retries=0,
            )
        except BaseException:
            shared.stop()
            raise
    server = EmbeddedServer(model_file.path, threads=settings.threads, ctx=settings.ctx * 2, alias=alias, parallel=2)
    if progress:
        print(
            "starting the language model in this process (a few seconds; minutes on a busy machine) ...",
            file=sys.stderr,
            flush=True,
        )
    server.start()
    if progress:
        print(f"language model ready in {server.load_seconds or 0.0:.1f} s", file=sys.stderr, flush=True)
    try:
        return LLMClient(
            server.base_url, alias, timeout=settings.timeout, server=server, model_file=model_file, max_retries=0
        )
    except BaseException:
        server.stop()
        raise
