"""In-sandbox entrypoint: runs one attempt of a Function's handler.

Started by runtime/sandbox/ (launcher.py) as

    <runtime python> -u -I -B bootstrap.py PAYLOAD_FD RESULT_FD

under the Functions' runtime environment, inside the sandbox. It imports
nothing from the app (only the standard library) and is mounted read-only.

Protocol (the Function's stdout and stderr are left alone: they are its logs):
  * PAYLOAD_FD (read, then closed): one JSON document with the handler, the
    event, the deadline (epoch ms), the limits and the context fields. The
    event never travels through the environment.
  * RESULT_FD (write, close-on-exec so the Function's subprocesses do not get
    it): newline-terminated JSON headers. First ``{"type": "started"}`` as soon
    as the interpreter runs, then one of
      {"type": "result", "status": "ok", "length": N, "maxrss_kb": K} + N bytes of JSON
      {"type": "result", "status": "error", "error": {type, message, traceback}, ...}
      {"type": "result", "status": "unserializable", "message": ...}
      {"type": "result", "status": "too_large", "size": N}
    after which the process exits at once with os._exit(0): like Lambda, the
    attempt ends when the handler returns, whatever threads it left behind.
A ``sys.exit()`` or a crash in the handler sends no result; the parent reports
the exit code or signal. The handler's error is not printed here: it travels in
the result, and the worker logs it as one entry with its traceback in order.

The in-run AWS endpoint: when the payload has ``aws`` (socket, port,
config_file, credentials), bootstrap binds 127.0.0.1:<port> (port 0: any free
one), starts a relay thread that copies bytes between each TCP connection and
the endpoint's Unix socket (no parsing; it ends with the attempt's process), and sets AWS_ENDPOINT_URL_STS/SSM/S3,
AWS_CONFIG_FILE and the attempt's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
AWS_SESSION_TOKEN in os.environ, all before the handler's module is imported.
"""

import os
import sys

CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without importing inspect (7 ms)


def _send(fd, header, body=b""):
    import json

    data = json.dumps(header).encode() + b"\n" + body
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _maxrss_kb():
    import resource

    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def _tmp_free_bytes():
    try:
        stat = os.statvfs("/tmp")
    except OSError:
        return None
    return stat.f_bavail * stat.f_frsize


def _open_up(path, depth=0):
    """Make every directory under `path` ours to empty again (a run may have chmod'ed them 0)."""
    if depth > 200:
        raise RecursionError("directories nested too deep")
    with os.scandir(path) as entries:
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                os.chmod(entry.path, 0o700)
                _open_up(entry.path, depth + 1)


def _empty_tmp():
    """Remove everything in /tmp (a warm environment's zygote, after each run), whatever its modes.

    Returns whether /tmp is empty now; if not, the environment is reported dirty and destroyed.
    """
    import shutil

    try:
        _open_up("/tmp")
    except (OSError, RecursionError):
        pass
    try:
        with os.scandir("/tmp") as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
        return not os.listdir("/tmp")
    except OSError:
        return False


def _read_all(fd):
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks)


def _set_limits(limits):
    import resource

    mb = 1024 * 1024
    wanted = {
        # RLIMIT_DATA, not RLIMIT_AS: address space reservations (thread
        # stacks, mmap'd files, the allocator's arenas) would fail long before
        # real memory runs out.
        resource.RLIMIT_DATA: limits["memory_mb"] * mb,
        resource.RLIMIT_NPROC: limits["max_processes"],
        resource.RLIMIT_NOFILE: limits["max_open_files"],
        resource.RLIMIT_FSIZE: limits["max_file_size_mb"] * mb,
        resource.RLIMIT_CORE: 0,
    }
    for which, value in wanted.items():
        # Soft and hard alike: the Function cannot raise them again.
        resource.setrlimit(which, (value, value))


RELAY_BUFFER = 256 * 1024   # per direction: reading pauses while the other side lags this far behind


class _RelaySide:
    """One end of a relayed connection (_relay). Made here once, not per run: a class is costly to make."""

    __slots__ = ("sock", "fd", "out", "eof", "shut", "peer", "events")

    def __init__(self, sock):
        self.sock = sock
        self.fd = sock.fileno()
        self.out = bytearray()   # bytes waiting to be written to this side
        self.eof = False         # this side will send nothing more
        self.shut = False        # we told this side we will send nothing more
        self.peer = None
        self.events = 0


def _relay(listener, socket_path):
    """Copy bytes both ways between each accepted TCP connection and a new connection to ``socket_path``.

    Runs forever on a thread of the attempt's own process (it ends with the process). Built
    on the C modules only (``_socket`` objects, one ``select.epoll``), all made before the
    Function's code runs: a Function that monkey-patches ``socket``, ``selectors`` or
    ``select`` (gevent's ``patch_all``, say) changes nothing here. ``listener`` is a listening
    TCP socket (any object with ``detach()``, or a file descriptor).
    """
    import _socket
    import select

    EPOLLIN, EPOLLOUT = select.EPOLLIN, select.EPOLLOUT
    hangup = select.EPOLLHUP | select.EPOLLERR
    blocking = (BlockingIOError, InterruptedError)
    fileno = listener.detach() if hasattr(listener, "detach") else int(listener)
    listener = _socket.socket(fileno=fileno)
    listener.setblocking(False)
    poller = select.epoll()
    poller.register(listener.fileno(), EPOLLIN)
    sides = {}   # fd -> _RelaySide

    def close(side):
        for one in (side, side.peer):
            if one.events:
                poller.unregister(one.fd)
                one.events = 0
            sides.pop(one.fd, None)
            one.sock.close()

    def update(side):
        wanted = 0
        if not side.eof and len(side.peer.out) < RELAY_BUFFER:
            wanted |= EPOLLIN
        if side.out:
            wanted |= EPOLLOUT
        if wanted != side.events:
            if side.events and wanted:
                poller.modify(side.fd, wanted)
            elif wanted:
                poller.register(side.fd, wanted)
            else:
                poller.unregister(side.fd)
            side.events = wanted

    def finish_if_done(side):
        peer = side.peer
        if side.eof and peer.eof and not side.out and not peer.out:
            close(side)
            return True
        for one in (side, peer):
            if one.peer.eof and not one.out and not one.shut:
                one.shut = True
                try:
                    one.sock.shutdown(_socket.SHUT_WR)
                except OSError:
                    pass
        return False

    def accept():
        try:
            fd, _ = listener._accept()
        except OSError:
            return
        client = _socket.socket(fileno=fd)
        upstream = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        try:
            upstream.connect(socket_path)
        except OSError:
            upstream.close()
            client.close()
            return
        client.setsockopt(_socket.IPPROTO_TCP, _socket.TCP_NODELAY, 1)
        a, b = _RelaySide(client), _RelaySide(upstream)
        a.peer, b.peer = b, a
        for one in (a, b):
            one.sock.setblocking(False)
            sides[one.fd] = one
        update(a)
        update(b)

    while True:
        try:
            ready = poller.poll()
        except InterruptedError:
            continue
        for fd, mask in ready:
            if fd == listener.fileno():
                accept()
                continue
            side = sides.get(fd)
            if side is None or not side.events:
                continue  # closed by its peer's event in this round
            try:
                # A hang-up or error is reported whatever was asked for: read to its end then.
                if mask & (EPOLLIN | hangup) and not side.eof:
                    data = side.sock.recv(65536)
                    if data:
                        side.peer.out += data
                    else:
                        side.eof = True
                if mask & EPOLLOUT and side.out:
                    sent = side.sock.send(side.out)
                    del side.out[:sent]
            except blocking:
                pass
            except OSError:
                close(side)
                continue
            if not finish_if_done(side):
                update(side)
                update(side.peer)


def _start_aws_relay(aws):
    """Listen on 127.0.0.1, start the relay's thread, and give the Function its AWS environment.

    A thread of this process, not a process of its own: forking the attempt's process (tens of
    MB, already boto3's) for the relay cost a warm run milliseconds of page copying and a
    process to kill and reap at the end. The relay carries only this attempt's own bytes (every
    request is SigV4-checked by the worker, and the Function could reach the socket itself),
    so sharing its process gives the Function nothing it did not have.
    """
    import _socket
    import _thread

    listener = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
    listener.setsockopt(_socket.SOL_SOCKET, _socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(aws["port"])))
    listener.listen(128)
    port = listener.getsockname()[1]
    _thread.start_new_thread(_relay, (listener, aws["socket"]))
    url = f"http://127.0.0.1:{port}"
    os.environ.update({
        "AWS_ENDPOINT_URL_STS": url,
        "AWS_ENDPOINT_URL_SSM": url,
        "AWS_ENDPOINT_URL_S3": url,
        "AWS_CONFIG_FILE": aws["config_file"],
        **aws["credentials"],
    })


class LambdaContext:
    """What AWS Lambda's Python runtime passes as ``context``."""

    def __init__(self, info, deadline_ms):
        self.aws_request_id = info["request_id"]
        self.function_name = info["function_name"]
        self.function_version = "$LATEST"
        # A string, as Lambda's own runtime gives it (it reads the environment).
        self.memory_limit_in_mb = str(info["memory_limit_in_mb"])
        self.invoked_function_arn = info["invoked_function_arn"]
        self.log_group_name = info["log_group_name"]
        self.log_stream_name = info["log_stream_name"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self):
        import time

        return max(0, int(self._deadline_ms - time.time() * 1000))

    def __repr__(self):
        return (f"LambdaContext([aws_request_id={self.aws_request_id},"
                f"function_name={self.function_name},function_version={self.function_version},"
                f"memory_limit_in_mb={self.memory_limit_in_mb}])")


def _error(exc, error_type=None, message=None):
    import traceback

    return {
        "type": error_type or type(exc).__name__,
        "message": str(exc) if message is None else message,
        "traceback": "".join(traceback.format_exception(exc)),
    }


def _load_handler(code_dir, handler):
    """Resolve ``path/to/module.function`` (CONTRACT.md) to the function.

    Dots or slashes before the last dot name the file: ``a.b.main`` is
    ``a/b.py``, ``dir/mod.fn`` is ``dir/mod.py``. The module is loaded from
    that file and registered in sys.modules under its dotted name.
    Returns (function, None) or (None, error dict).
    """
    import importlib.util

    module_part, function_name, module_name, relative, path = _handler_location(code_dir, handler)
    if not module_part or not function_name:
        return None, {"type": "Runtime.MalformedHandlerName",
                      "message": f"Bad handler '{handler}': expected path/to/module.function",
                      "traceback": ""}
    if not os.path.isfile(path):
        return None, {"type": "Runtime.ImportModuleError",
                      "message": f"Unable to import module '{module_name}': "
                                 f"no file {relative}.py in the code package",
                      "traceback": ""}
    try:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        if _handler_code is not None and _handler_code[0] == (path, *_file_identity(path)):
            _give_code(spec.loader, _handler_code[1])
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        kind = "Runtime.UserCodeSyntaxError" if isinstance(exc, SyntaxError) else "Runtime.ImportModuleError"
        return None, _error(exc, kind, f"Unable to import module '{module_name}': "
                                       f"{type(exc).__name__}: {exc}")
    function = getattr(module, function_name, None)
    if function is None:
        return None, {"type": "Runtime.HandlerNotFound",
                      "message": f"Handler '{function_name}' missing on module '{module_name}'",
                      "traceback": ""}
    if not callable(function):
        return None, {"type": "Runtime.HandlerNotFound",
                      "message": f"Handler '{function_name}' on module '{module_name}' is not a function",
                      "traceback": ""}
    code = getattr(function, "__code__", None)
    if code is not None and code.co_flags & CO_COROUTINE:
        return None, {"type": "Runtime.HandlerNotFound",
                      "message": f"Handler '{function_name}' is an async function; "
                                 "it must be a plain def handler(event, context)",
                      "traceback": ""}
    return function, None


def _handler_location(code_dir, handler):
    """(module part, function name, module name, relative path, file) of a handler spec."""
    module_part, _, function_name = handler.rpartition(".")
    relative = module_part.replace(".", "/")
    return module_part, function_name, relative.replace("/", "."), relative, os.path.join(code_dir, relative + ".py")


def _file_identity(path):
    st = os.stat(path)
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


# A zygote's compilation of its handler's module: (file and its identity, code object).
_handler_code = None


def _precompile_handler(code_dir, handler):
    """Compile the handler's module once, in the zygote, as its loader would in each run.

    Compiling is not running: nothing of the module executes here, and each run still executes
    it afresh in its own process. The code object is what the run's own loader makes (its
    get_code, from the source). Left to each run, as before: a module whose compilation warns
    (a SyntaxWarning is the Function's to see in its run's log) or fails, and one the bundle
    ships a .pyc for (unmarshalling the bundle's bytecode is for the run's process only).
    Returns whether the code was kept.
    """
    global _handler_code
    import importlib.util
    import warnings

    module_part, function_name, module_name, _relative, path = _handler_location(code_dir, handler)
    if not module_part or not function_name or not os.path.isfile(path):
        return False
    try:
        if os.path.lexists(importlib.util.cache_from_source(path)):
            return False
        identity = _file_identity(path)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            code = importlib.util.spec_from_file_location(module_name, path).loader.get_code(module_name)
    except Exception:
        return False
    if caught or code is None or _file_identity(path) != identity:
        return False
    _handler_code = ((path, *identity), code)
    return True


def _give_code(loader, code):
    """Let ``loader.exec_module`` run ``code`` (the zygote's compilation) instead of compiling.

    exec_module asks the loader for the code once; the answer removes itself, so the module's
    ``__loader__`` is the plain loader again before any of the module's own code runs, and
    exec_module (its frames in a traceback included) is the loader's own.
    """
    def get_code(_fullname):
        del loader.get_code
        return code

    loader.get_code = get_code


def _json_default(value):
    # What Lambda's own serialiser adds to the json module.
    import decimal

    if isinstance(value, decimal.Decimal):
        return float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def main(argv):
    if argv[1] == "zygote":
        _zygote(argv)
        return
    _run_attempt(int(argv[1]), int(argv[2]))


def _run_attempt(payload_fd, result_fd):
    # Before the payload (the event and the attempt's AWS credentials) is read: no other
    # process of the same uid, another run's leftover included, may ptrace this one or read
    # its memory, environ or maps through /proc. The Function may undo it for itself only,
    # and a program it executes starts dumpable again (execve), so the guarantee that
    # nothing of an earlier run is left to try is the leftover check (_dirty) and, cold,
    # the killed pid namespace.
    _set_dumpable(0)
    os.set_inheritable(result_fd, False)
    _send(result_fd, {"type": "started"})
    _watch_for_samsara()

    import json

    payload = json.loads(_read_all(payload_fd))
    _set_limits(payload["limits"])

    import faulthandler

    faulthandler.enable()  # a crash prints the Python stack to stderr

    if payload.get("aws"):
        _start_aws_relay(payload["aws"])

    code_dir = payload["code_dir"]
    sys.path.insert(0, code_dir)
    os.chdir(code_dir)
    context = LambdaContext(payload["context"], payload["deadline_ms"])
    event = payload["event"]
    max_return = payload["limits"]["max_return_bytes"]
    handler_spec = payload["handler"]
    del payload

    def finish(header, body=b""):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        header["maxrss_kb"] = _maxrss_kb()
        header["tmp_free_bytes"] = _tmp_free_bytes()
        try:
            _send(result_fd, header, body)
            # Our pipes end here, before the exit, which takes milliseconds to free a warm
            # run's memory: a warm run is over for the worker once its result is in and its
            # pipes have ended; the zygote reports the exit after (runtime/warm.py).
            for fd in (result_fd, 1, 2):
                try:
                    os.close(fd)
                except OSError:
                    pass
        finally:
            os._exit(0)

    handler, error = _load_handler(code_dir, handler_spec)
    if error is not None:
        finish({"type": "result", "status": "error", "error": error})

    try:
        value = handler(event, context)
    except Exception as exc:  # SystemExit and KeyboardInterrupt end the process
        error = _error(exc)
        finish({"type": "result", "status": "error", "error": error})

    try:
        body = json.dumps(value, default=_json_default).encode("utf-8")
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        finish({"type": "result", "status": "unserializable", "message": f"{type(exc).__name__}: {exc}"})
    except MemoryError:
        finish({"type": "result", "status": "error",
                "error": {"type": "MemoryError", "message": "serialising the return value",
                          "traceback": ""}})
    if len(body) > max_return:
        finish({"type": "result", "status": "too_large", "size": len(body)})
    finish({"type": "result", "status": "ok", "length": len(body)}, body)


# --------------------------------------------------------------------------
# Samsara's guide spelling (CONTRACT.md "Invocation")

class _SamsaraGuideSpelling:
    """Samsara's guide writes ``import samsara; samsara.Function()``, which the
    published SDK does not export (it lives in ``samsara.function``). This
    meta path finder watches only for the top-level ``samsara`` and, when the
    one found is the runtime environment's SDK (never a bundled samsara.py or
    package, which still wins as it comes first on sys.path), lets
    ``samsara.Function`` resolve to ``samsara.function.Function`` on first
    use. Nothing else of the SDK changes and nothing more is imported until the
    attribute is read; it works the same cold and in a warm environment, whose
    preloaded samsara the children inherit."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "samsara" or path is not None:
            return None
        spec = None
        for finder in sys.meta_path:
            find = getattr(finder, "find_spec", None)
            if finder is _SamsaraGuideSpelling or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        loader = getattr(spec, "loader", None)
        origin = getattr(spec, "origin", None) or ""
        if loader is None or not hasattr(loader, "exec_module") or not origin.startswith(sys.prefix + os.sep):
            return spec
        exec_module = loader.exec_module

        def exec_then_alias(module):
            del loader.exec_module  # the loader is the SDK's own again once it has run
            exec_module(module)
            _alias_function(module)

        loader.exec_module = exec_then_alias
        return spec


def _alias_function(module):
    sdk_getattr = module.__dict__.get("__getattr__")  # the SDK's lazy attributes (PEP 562)

    def __getattr__(name):
        if name == "Function":
            import importlib

            return importlib.import_module(module.__name__ + ".function").Function
        if sdk_getattr is not None:
            return sdk_getattr(name)
        raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")

    module.__getattr__ = __getattr__


def _watch_for_samsara():
    if _SamsaraGuideSpelling not in sys.meta_path:
        sys.meta_path.insert(0, _SamsaraGuideSpelling)


# --------------------------------------------------------------------------
# Zygote mode (a warm execution environment, runtime/warm.py)

# The platform's heavy pre-installed packages, imported once per environment whose bundle
# names them (_preload_for).
# Never the Function's own code: each invocation imports it in a fresh child,
# so its module globals never outlive the invocation.
PRELOAD = ("boto3", "botocore.client", "botocore.parsers", "botocore.serialize", "botocore.httpsession",
           "requests", "urllib3", "samsara")
HTTP_PRELOAD = ("requests", "urllib3")
# The standard library modules this file imports in every run's process (_run_attempt, the AWS
# relay), imported once in the zygote of every kind, bare included: each run would import them
# again otherwise. Bootstrap imports them before the Function's code runs either way.
RUN_IMPORTS = ("faulthandler", "importlib.util", "select", "_socket", "_thread", "json", "resource", "socket")
PR_SET_DUMPABLE = 4
MAX_BUNDLE_ENTRIES = 20000


def _bundle_names(code_dir):
    """Every directory name and module stem in the bundle (what could shadow a package), or None if huge."""
    names = set()
    count = 0
    for _root, dirs, files in os.walk(code_dir):
        names.update(dirs)
        names.update(name.partition(".")[0] for name in files)
        count += len(dirs) + len(files)
        if count > MAX_BUNDLE_ENTRIES:
            return None
    return names


def _preload(argv, uses):
    """Import what the bundle can use of PRELOAD unless it ships its own copy of one of them (or of
    what they import). Returns whether anything was imported."""
    wanted = _preload_for(uses)
    if not wanted:
        return False
    names = _bundle_names(os.getcwd())
    if names is None:
        return False
    import importlib

    before = set(sys.modules)
    for module in wanted:
        try:
            importlib.import_module(module)
        except Exception:
            pass
    loaded = {name.partition(".")[0] for name in set(sys.modules) - before} - set(sys.stdlib_module_names)
    if loaded & names:
        # A child would get our copy instead of the bundle's: start again without preloading.
        os.set_inheritable(int(argv[2]), True)
        os.execv(sys.executable, [sys.executable, "-u", "-I", "-B", __file__, *argv[1:4], "bare"])
    if "boto3" in wanted:
        try:
            _warm_aws_models()
        except Exception:
            pass  # a run then loads the models itself, as a cold one does
    return True


def _preload_for(uses):
    """What to preload for a bundle whose Python files name ``uses`` (None: the scan could not tell).

    Every preloaded page makes each run's fork dearer (the page tables copied, then the pages a
    run writes): boto3 with its models makes a trivial run's fork several times dearer. A bundle
    that names none of these packages gets none of them; it can still import them, each run then
    importing them itself as a cold run does. Only speed depends on this, never behaviour.
    """
    if uses is None or uses & AWS_MARKERS:
        return PRELOAD
    if uses & HTTP_MARKERS:
        return HTTP_PRELOAD
    return ()


# The clients a Samsara Function makes on every run: the SDK's secrets().load() assumes the
# role (STS) and reads the parameter (SSM); storage is S3.
WARM_AWS_SERVICES = ("sts", "ssm", "s3")
ZYGOTE_AWS_ROUNDS = 2


def _warm_aws_models():
    """Give every botocore session of a run one loader whose caches already hold the models.

    Making a client reads and parses the service's JSON models (service-2, endpoint rule
    set, endpoints, partitions, retry config: about 120 ms of CPU for STS, SSM and S3);
    botocore caches them per loader, and every new session makes its own loader. Here one
    loader, made before any run, has loaded them by building throw-away clients with dummy
    credentials, and sessions that ask for the default data path get it. Only data read
    from the read-only runtime environment is cached: no session, client, credential,
    configuration or environment variable of the zygote reaches a run, and a run's changes
    to the cache stay in its own forked memory. A session given its own AWS_DATA_PATH gets
    a loader of its own, as before.
    """
    import boto3.session
    import botocore.loaders
    import botocore.session

    class _SearchPaths(list):
        # Every boto3 session appends its resource models' directory to its loader's search
        # path: with one loader per run that would grow by one entry per session.
        def append(self, path):
            if path not in self:
                super().append(path)

    loader = botocore.loaders.create_loader()
    loader._search_paths = _SearchPaths(loader.search_paths)
    make_loader = botocore.session.create_loader

    def create_loader(search_path_string=None):
        return make_loader(search_path_string) if search_path_string else loader

    botocore.session.create_loader = create_loader
    session = boto3.session.Session(aws_access_key_id="zygote", aws_secret_access_key="zygote",
                                    region_name="us-east-1")
    for service in WARM_AWS_SERVICES:
        session.client(service, endpoint_url="http://127.0.0.1:9")
    _share_builtin_handlers()
    import botocore.endpoint_provider
    import botocore.hooks

    _copy_handler_tables_on_write(botocore.hooks._PrefixTrie)
    _share_default_alias_names(botocore.hooks.EventAliaser)
    _build_rule_sets_once(botocore.endpoint_provider)
    _take_aws_steps_in_the_zygote()


def _take_aws_steps_in_the_zygote():
    """Take a run's AWS steps (``_aws_steps``: clients and calls) here, before any fork.

    Code run for the first time in a process does work that later runs of it skip: the
    interpreter specialises its bytecode, botocore fills its caches of pure functions, the
    HTTP stack imports modules on first use. Done here, it is done once for every run forked
    from this zygote, instead of in each run (or each spare): a run whose spare had no time to
    warm up took about 38 ms for these steps, and about 22 ms after this (13 ms once its spare has
    warmed up as well). Two rounds: the interpreter specialises an instruction only once it has
    run before; eight rounds gained about 3 ms more a run for 120 ms more at every start. The
    responder's thread has ended and its sockets are closed before this returns; what the steps
    made is garbage the zygote collects before it freezes its objects.
    """
    try:
        responder = _CannedResponder()
    except (OSError, RuntimeError):
        return  # no loopback, or no thread under the process limit: the spares warm up alone
    try:
        for _round in range(ZYGOTE_AWS_ROUNDS):
            for _step in _aws_steps(responder.url):
                pass
    except Exception:
        pass  # only speed depends on this
    finally:
        responder.close()


def _share_builtin_handlers():
    """Every new botocore session copies one table of its built-in event handlers, made here.

    A session registers ~130 built-in handlers one by one, each checked with
    inspect.signature: about a fifth of the CPU of three clients. The
    table holds module-level functions only; each session gets its own copy (the
    structure botocore itself copies for every client), so what a run registers
    stays in that run's session. Sessions given their own event hooks are left alone.
    """
    import copy

    import botocore.session

    session_class = botocore.session.Session
    template = session_class()._original_handler
    init = session_class.__init__

    def __init__(self, session_vars=None, event_hooks=None, include_builtin_handlers=True, profile=None):
        if event_hooks is None and include_builtin_handlers:
            event_hooks = copy.copy(template)
            event_hooks._lookup_cache = {}
            include_builtin_handlers = False
        init(self, session_vars, event_hooks, include_builtin_handlers, profile)

    session_class.__init__ = __init__


def _copy_handler_tables_on_write(trie_class):
    """Copies of botocore's table of event handlers share its nodes until one side changes them.

    Every client copies its session's table (botocore.args: copy.copy of the emitter), and
    botocore's copy walks and duplicates the whole trie of ~130 handlers: about a third of
    the CPU of a run's three clients. Here a copy takes the same root, and a change (a
    handler registered or unregistered) first copies just the nodes on its key's path,
    those it does not own yet, with their handler lists; the rest stays shared. Reads are
    botocore's own. What each table holds, and so every event's handlers in their order, is
    exactly what botocore's full copy gives: a handler added to one client's or session's
    table is in no other. Nodes carry their owning table's token ("_owner"); after a copy
    neither side owns any node.
    """
    import copy

    from botocore.hooks import _MIDDLE, NodeList

    def owner(trie):
        token = trie.__dict__.get("_owner")
        if token is None:
            token = trie._owner = object()
        return token

    def writable(trie, node, parent, part):
        """`node`, or a copy of it that `trie` owns, put in its parent's (owned) place."""
        token = owner(trie)
        if node.get("_owner") is token:
            return node
        values = node["values"]
        mine = {"chunk": node["chunk"], "values": copy.copy(values) if values is not None else None,
                "children": dict(node["children"]), "_owner": token}
        if parent is None:
            trie._root = mine
        else:
            parent["children"][part] = mine
        return mine

    def append_item(self, key, value, section=_MIDDLE):
        current = writable(self, self._root, None, None)
        for part in key.split("."):
            child = current["children"].get(part)
            if child is None:
                child = current["children"][part] = {"chunk": part, "values": None, "children": {},
                                                     "_owner": owner(self)}
            else:
                child = writable(self, child, current, part)
            current = child
        if current["values"] is None:
            current["values"] = NodeList([], [], [])
        current["values"][section].append(value)

    def remove_item(self, key, value):
        key_parts = key.split(".")
        current = writable(self, self._root, None, None)
        root = current
        for part in key_parts:  # the path made this table's own, then botocore's removal
            child = current["children"].get(part)
            if child is None:
                raise ValueError(f"key is not in trie: {'.'.join(key_parts)}")
            current = writable(self, child, current, part)
        self._remove_item(root, key_parts, value, index=0)

    def __copy__(self):
        new = self.__class__.__new__(self.__class__)
        new.__dict__ = {name: value for name, value in self.__dict__.items() if name != "_owner"}
        self.__dict__.pop("_owner", None)  # every node is now shared: this table owns none either
        return new

    trie_class.append_item, trie_class.remove_item, trie_class.__copy__ = append_item, remove_item, __copy__


def _share_default_alias_names(aliaser_class):
    """Event aliasers with botocore's default aliases share one cache of aliased event names.

    Every client copies its session's aliaser, and botocore gives each copy an empty cache
    of the names it has already aliased: each client then works out again, for every event
    it registers or emits, the same names from the same aliases. The name an event gets is
    a function of the event and the aliases alone, so aliasers whose aliases are botocore's
    defaults share one cache (filled by the zygote's own clients, copied into each run's
    memory by the fork); one given other aliases keeps a cache of its own.
    """
    from botocore.hooks import EVENT_ALIASES

    shared: dict[str, str] = {}
    init = aliaser_class.__init__

    def __init__(self, event_emitter, event_aliases=None):
        init(self, event_emitter, event_aliases)
        if self._event_aliases is EVENT_ALIASES or self._event_aliases == EVENT_ALIASES:
            self._alias_name_cache = shared

    aliaser_class.__init__ = __init__


def _build_rule_sets_once(endpoint_provider):
    """An endpoint rule set is built once per service's rule data, not once per client.

    Every client's endpoint provider turns the service's endpoint rules (JSON the shared
    loader already holds) into a tree of rule objects, a few hundred for S3. That tree is
    read-only once built (each resolution works on a copy of its parameters), so providers
    given the very same data objects, as every client of a service is by the one loader,
    share it. Data not seen before (another service, a session with its own data path)
    gets a tree of its own. (A run that edited the loaded rule data in place, which botocore
    never does, would still get the tree built from the data as loaded.)
    """
    rule_set_class = endpoint_provider.RuleSet
    built: dict[tuple[int, int, int], tuple] = {}

    def rule_set(version, parameters, rules, partitions, documentation=None, **kwargs):
        key = (id(parameters), id(rules), id(partitions))
        found = built.get(key)
        # The data objects themselves are kept in the entry: an id is only compared while its object lives.
        if found is None or found[0] is not parameters or found[1] is not rules or found[2] is not partitions \
                or found[3] != (version, documentation, kwargs):
            found = built[key] = (parameters, rules, partitions, (version, documentation, kwargs),
                                  rule_set_class(version, parameters, rules, partitions, documentation, **kwargs))
        return found[4]

    endpoint_provider.RuleSet = rule_set


def _dev_entries():
    """/dev is a writable tmpfs of its own (bwrap's --dev): everything in it, /dev/shm included."""
    found = set()
    for root, dirs, files in os.walk("/dev"):
        if root == "/dev/pts":
            dirs[:] = []
            continue
        found.update(os.path.join(root, name) for name in dirs + files)
    return found


KEYCTL_SYSCALL = {"x86_64": 250, "aarch64": 219}
KEYCTL_READ = 11
KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING = -3, -4, -5
_keyctl = None   # libc's syscall(), returning a long, and a buffer for KEYCTL_READ


def _keyrings():
    """The keys linked in the keyrings a child shares with us (session, user, user session): they
    live in the environment's user namespace, past the process that added them."""
    global _keyctl
    nr = KEYCTL_SYSCALL.get(os.uname().machine)
    if nr is None:
        return None
    import ctypes

    if _keyctl is None:  # made once: the zygote reads the keyrings after every run
        syscall = ctypes.CDLL(None, use_errno=True).syscall
        syscall.restype = ctypes.c_long
        _keyctl = (syscall, ctypes.create_string_buffer(4096))  # the buffer: ours, read into each time
    syscall, buffer = _keyctl
    found = []
    for spec in (KEY_SPEC_SESSION_KEYRING, KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING):
        size = syscall(nr, KEYCTL_READ, ctypes.c_long(spec), buffer, ctypes.c_long(4096))
        found.append(buffer.raw[:min(size, 4096)] if size >= 0 else -ctypes.get_errno())
    return found


def _live_tasks(pid):
    """How many threads of process `pid` are not zombies.

    Not the leader's state: a leader whose main thread exited shows "Z" in
    /proc/PID/stat while its other threads run on, and one such process
    lived past its run and read the next run's memory.
    """
    live = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0  # gone meanwhile
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat", "rb") as handle:
                state = handle.read().rpartition(b")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in (b"Z", b"X"):
            live += 1
    return live


def _read_file(path):
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _dirty(dev_before, keys_before):
    """What an invocation left behind: processes other than the namespace's init and us with a
    live thread (a reaped-soon zombie aside), System V IPC objects, new entries in /dev."""
    me = os.getpid()
    left = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, me):
            continue
        if _live_tasks(entry):
            left.append(f"process {entry}")
    for kind in ("shm", "msg", "sem"):
        try:
            # A header line, then one line per object. Bytes through os.read: a text file object
            # per read cost the zygote dozens of page faults after every run (its pages are
            # shared with the run it just forked, so each write to one is a fault).
            if len(_read_file(f"/proc/sysvipc/{kind}").splitlines()) > 1:
                left.append(f"sysv {kind}")
        except OSError:
            pass
    if _keyrings() != keys_before:
        left.append("keys")
    try:
        if _dev_entries() != dev_before:
            left.append("/dev")
    except OSError:
        left.append("/dev")
    return left


_prctl = None   # libc's prctl, made once: a zygote's runs use its copy, made before any run


def _set_dumpable(value):
    global _prctl
    try:
        if _prctl is None:
            import ctypes

            # A CDLL makes a class of its own: about 0.3 ms of a warm run's CPU, page faults included.
            _prctl = ctypes.CDLL(None).prctl
        _prctl(PR_SET_DUMPABLE, value, 0, 0, 0)
    except Exception:
        pass


def _child(control, fds):
    """In the forked child: become a cold bootstrap with this invocation's pipes, and exit like one."""
    code = 1
    try:
        control.close()
        payload_fd, result_fd, out_fd, err_fd = fds
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.close(out_fd)
        os.close(err_fd)
        _run_attempt(payload_fd, result_fd)  # ends with os._exit unless the handler exits
        code = 0
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code & 0xFF
        else:
            try:
                sys.stderr.write(f"{exc.code}\n")
            except Exception:
                pass
    except BaseException:
        import traceback

        try:
            traceback.print_exc()
        except BaseException:
            pass
    finally:
        # What the interpreter would do at exit, and nothing of the zygote's own clean-up.
        try:
            import atexit

            atexit._run_exitfuncs()
        except BaseException:
            pass
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:
                pass
        os._exit(code)


class _Spare:
    """The next run's process, forked ahead of the run so that the fork, and for a bundle that
    uses boto3 the first touch of its pages, are paid while nothing waits.

    A forked child shares the zygote's pages until it writes them, and nearly every object
    a run uses is written (its reference count, 3.12's specialised bytecode): a warm run
    that loads its secrets with the SDK took about 3,000 page faults, a third of its CPU.
    The spare takes most of them before its run arrives by making throw-away STS, SSM and
    S3 clients and calls (``_aws_steps``, answered by a responder of its own: nothing leaves
    the process), as the zygote did before its first fork, but in the run's own process. It
    holds nothing of any run: it is forked from the zygote after the previous run's process
    is gone, its leftovers checked and /tmp emptied, and is given exactly one run's
    descriptors, then runs it as ``_child`` does. It stops warming up as soon as its run is
    handed over, so a run never waits for the warm-up to finish (only for the step in
    progress).
    """

    def __init__(self, control, prewarm):
        import socket

        # Warm up at idle priority (SCHED_IDLE: only CPU nobody else wants, never the worker's
        # recording of the run before, nor another sandbox's run) when the worker can give the
        # spare normal priority back before handing it its run (it has CAP_SYS_NICE: "idle" is
        # then set, runtime/warm.py). Nothing in the sandbox may raise a priority.
        idle = prewarm == "idle"
        self.pid, self.idle = None, idle
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            self.handoff = None
            return
        if pid == 0:
            ours.close()
            control.close()
            _spare_child(theirs, prewarm)
        theirs.close()
        self.pid, self.handoff = pid, ours
        if idle:
            # Set here, before the next message is read: the check in hand() then sees whatever
            # the worker did after this (never a spare that lowers itself later).
            try:
                os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
            except OSError:
                self.idle = False

    def hand(self, fds):
        """Give the spare its run's descriptors; its pid, or None when there is no spare to run it."""
        import socket

        pid, handoff, self.pid, self.handoff = self.pid, self.handoff, None, None
        if pid is None:
            return None
        try:
            if self.idle and os.sched_getscheduler(pid) != os.SCHED_OTHER:
                # The worker gives the spare normal priority back before sending its run; one it
                # did not (it could not find it) is replaced: a Function never runs idle.
                raise OSError("the spare is still at idle priority")
            socket.send_fds(handoff, [b"run"], fds)
            return pid
        except OSError:
            try:
                os.kill(pid, 9)
            except OSError:
                pass
            os.waitpid(pid, 0)
            return None
        finally:
            handoff.close()


def _spare_child(handoff, prewarm):
    """In the spare: warm up while no run is waiting, then run the one handed over."""
    import socket

    try:
        if prewarm:
            _prewarm(handoff)
        try:
            message, fds, _flags, _addr = socket.recv_fds(handoff, 64, 4)
        except OSError:
            message, fds = b"", []
        if message != b"run" or len(fds) != 4:
            os._exit(0)  # the zygote is gone, or replaced us
        if os.sched_getscheduler(0) != os.SCHED_OTHER:
            os._exit(1)  # never run a Function at idle priority (the worker then runs it cold)
    except BaseException:
        os._exit(1)
    _child(handoff, fds)  # ends with os._exit


# Canned answers for the spare's warm-up calls: the shapes botocore parses on every run.
_PREWARM_STS = (b'<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleResult>'
                b"<AssumedRoleUser><AssumedRoleId>AROAWARMUP:warm-up</AssumedRoleId>"
                b"<Arn>arn:aws:sts::000000000000:assumed-role/warm-up/warm-up</Arn></AssumedRoleUser>"
                b"<Credentials><AccessKeyId>ASIAWARMUP</AccessKeyId><SecretAccessKey>warm-up</SecretAccessKey>"
                b"<SessionToken>warm-up</SessionToken><Expiration>2030-01-01T00:00:00Z</Expiration></Credentials>"
                b"</AssumeRoleResult><ResponseMetadata><RequestId>warm-up</RequestId></ResponseMetadata>"
                b"</AssumeRoleResponse>")
_PREWARM_SSM = (b'{"Parameter": {"Name": "/warm-up", "Type": "SecureString", "Value": "null", "Version": 1, '
                b'"LastModifiedDate": 1700000000.0, "ARN": "arn:aws:ssm:us-east-1:000000000000:parameter/warm-up", '
                b'"DataType": "text"}}')


def _prewarm(handoff):
    """Take the AWS steps a Samsara Function takes on every run (``_aws_steps``) until a run is
    waiting on ``handoff``. The calls go over real HTTP to a responder of the spare's own on
    127.0.0.1 (``_CannedResponder``: nothing leaves the process), so the connection and response
    code a run's first calls take is warm too, not only botocore's own; everything made is
    dropped, and the responder's thread has ended, before the run starts."""
    import gc
    import select

    def run_waiting():
        return bool(select.select([handoff], [], [], 0)[0])

    if run_waiting():
        return
    responder = None
    try:
        responder = _CannedResponder()
        # Step by step, each stopping short once a run is waiting: what a step did is what
        # the run would have done itself, so a run waits at most for the step in progress.
        for _step in _aws_steps(responder.url):
            if run_waiting():
                break
    except Exception:
        pass  # the run then pays these pages itself, as before
    finally:
        if responder is not None:
            responder.close()
    gc.collect()  # the steps' objects (clients hold reference cycles) are gone before the run's code starts


def _aws_steps(url):
    """Make and use throw-away STS, SSM and S3 clients, as the SDK's ``secrets().load()`` and a
    storage client do, against the canned responder at ``url``; yields after each step.

    Dummy keys and a session of our own (never boto3's default): no environment variable is
    read or written, and nothing made outlives the steps. What stays is what any run of the same
    steps leaves in its process: botocore's own caches of pure functions (operation names, URL
    parsing), modules imported on first use, and the interpreter's specialised bytecode.
    """
    import boto3.session

    session = boto3.session.Session(aws_access_key_id="warm-up", aws_secret_access_key="warm-up",
                                    region_name="us-east-1")
    sts = session.client("sts", endpoint_url=url)
    yield
    role = sts.assume_role(RoleArn="arn:aws:iam::000000000000:role/warm-up", RoleSessionName="warm-up")
    yield
    ssm = session.client("ssm", endpoint_url=url,
                         aws_access_key_id=role["Credentials"]["AccessKeyId"],
                         aws_secret_access_key=role["Credentials"]["SecretAccessKey"],
                         aws_session_token=role["Credentials"]["SessionToken"])
    yield
    ssm.get_parameter(Name="/warm-up", WithDecryption=True)
    yield
    session.client("s3", endpoint_url=url)
    yield
    if "samsara" in sys.modules:  # preloaded: finding its submodule imports nothing more
        # The SDK module every Samsara Function imports for its secrets (CONTRACT.md).
        _touch_module("samsara.function")


def _touch_module(name):
    """Take the steps of importing module ``name`` (find, read, execute) into a throwaway module that
    is never registered: the run's own import of it then runs warm code (its first import in a
    forked process pays the first touch of the import machinery's pages and of what the module
    executes). Only for modules whose execution has no effect beyond defining names."""
    import importlib.util

    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    exec(spec.loader.get_code(name), module.__dict__)


class _CannedResponder:
    """A thread of the spare (or of the zygote, before its first fork) answering the warm-up's HTTP
    requests on 127.0.0.1 (the sandbox's own loopback) with canned STS and SSM answers, until
    ``close()``, which returns once it has ended. Raises OSError or RuntimeError (no thread to
    spare under the Function's process limit) with nothing of it left open."""

    def __init__(self):
        import socket
        import threading

        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.listener.bind(("127.0.0.1", 0))
            self.listener.listen(4)
            self.url = "http://127.0.0.1:%d" % self.listener.getsockname()[1]
            self.connections = []
            self.thread = threading.Thread(target=self._serve, name="warm-up-responder", daemon=True)
            self.thread.start()
        except BaseException:
            self.listener.close()  # never a listening socket inherited by the runs
            raise

    def _serve(self):
        import select

        # No time limit of its own: at idle priority the warm-up may stall for seconds between
        # two calls, and a responder gone by then would leave the next call waiting for botocore's
        # 60 s read timeout, with the run behind it. close() ends it by shutting the sockets down.
        sockets = [self.listener]
        try:
            while True:
                for sock in select.select(sockets, [], [])[0]:
                    if sock is self.listener:
                        connection, _ = self.listener.accept()
                        self.connections.append(connection)
                        sockets.append(connection)
                    elif not self._answer(sock):
                        sockets.remove(sock)
        except (OSError, ValueError):
            return  # shut down by close(); never a traceback on the spare's stderr

    @staticmethod
    def _answer(connection):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = connection.recv(65536)
            if not chunk:
                return False
            body += chunk
        if b"x-amz-target:" in head.lower():
            answer, content_type = _PREWARM_SSM, b"application/x-amz-json-1.1"
        else:
            answer, content_type = _PREWARM_STS, b"text/xml"
        connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: " + content_type + b"\r\nx-amzn-RequestId: warm-up\r\n"
                           b"Content-Length: %d\r\n\r\n" % len(answer) + answer)
        return True

    def close(self):
        import socket

        for sock in (self.listener, *self.connections):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.thread.join(5)
        for sock in (self.listener, *self.connections):
            sock.close()
        if self.thread.is_alive():
            os._exit(1)  # never hand a run a process with a thread of ours: the run goes cold instead


AWS_MARKERS = frozenset({b"boto3", b"botocore", b"samsara"})
HTTP_MARKERS = frozenset({b"requests", b"urllib3"})
SCAN_BYTES = 8 * 1024 * 1024


def _bundle_mentions(code_dir):
    """Which of the AWS and HTTP markers the bundle's Python files name, or None if they are
    more than 8 MB (the scan cannot tell then)."""
    found = set()
    left = SCAN_BYTES
    markers = AWS_MARKERS | HTTP_MARKERS
    for root, _dirs, files in os.walk(code_dir):
        for name in files:
            if not name.endswith(".py"):
                continue
            try:
                with open(os.path.join(root, name), "rb") as handle:
                    data = handle.read(left + 1)
            except OSError:
                continue
            found.update(marker for marker in markers if marker in data[:left])
            if found & AWS_MARKERS:
                return found  # the full preload: nothing more to learn
            if len(data) > left:
                return None
            left -= len(data)
    return found


def _zygote(argv):
    """bootstrap.py zygote CONTROL_FD LIMITS_JSON [bare]

    CONTROL_FD is a SOCK_SEQPACKET socket to the worker. We send
    {"type": "started"} at once and {"type": "ready", "preloaded": bool,
    "prewarm": bool, "precompiled": bool} once the rlimits are set, the packages
    imported and the handler's module compiled (LIMITS_JSON names the handler). Then,
    per invocation, the worker sends b"run" with four fds (payload read end,
    result write end, stdout, stderr); a child forked before the run (the
    spare, see _Spare) runs the attempt exactly as a cold bootstrap would, and
    once it has exited we answer {"type": "exit",
    "status": wait status, "maxrss_kb": K, "dirty": [...]}. We never read a
    payload: no event or credential of one invocation is ever in this
    process's memory for a later one to find.
    """
    import json
    import socket

    control_fd = int(argv[2])
    os.set_inheritable(control_fd, False)
    control = socket.socket(fileno=control_fd)
    control.send(b'{"type": "started"}\n')
    _set_dumpable(0)  # the children (same uid) cannot ptrace us or read our memory through /proc
    options = json.loads(argv[3])
    _set_limits(options)
    import resource

    # POSIX message queues would outlive a run in the environment's IPC namespace, unlisted
    # (no mqueue mount): none at all.
    resource.setrlimit(resource.RLIMIT_MSGQUEUE, (0, 0))
    dev_before, keys_before = _dev_entries(), _keyrings()
    _watch_for_samsara()  # before the preload imports samsara, so the children inherit the alias
    import importlib

    for module in RUN_IMPORTS:
        importlib.import_module(module)
    # A bare zygote (argv's fifth item) preloads nothing: _preload_for gives nothing for no uses.
    uses = _bundle_mentions(os.getcwd()) if len(argv) < 5 else set()
    preloaded = _preload(argv, uses)
    # The builtin compile(), which loads each run's handler module from source, makes the
    # interpreter's ~120 AST node types on its first call: about 2 ms of every run's CPU, page
    # faults included, when each forked run did it again. Made once here, from no code at all.
    compile("", "<zygote>", "exec")
    handler = options.get("handler")
    precompiled = bool(handler) and _precompile_handler(os.getcwd(), handler)
    import gc

    gc.collect()
    gc.freeze()  # the preloaded objects' pages stay shared with the children
    # Only for bundles that use boto3 (the SDK does): a trivial Function's runs would pay
    # its CPU for nothing.
    prewarm = preloaded and bool(uses and uses & AWS_MARKERS) and options.get("spare_warm_up", True)
    if prewarm and options.get("idle_warmup"):
        prewarm = "idle"
    control.send(json.dumps({"type": "ready", "preloaded": preloaded, "prewarm": bool(prewarm),
                             "idle_warmup": prewarm == "idle", "precompiled": precompiled}).encode() + b"\n")
    spare = _Spare(control, prewarm)
    while True:
        try:
            message, fds, _flags, _addr = socket.recv_fds(control, 64, 4)
        except OSError:
            os._exit(0)
        if not message:
            os._exit(0)  # the worker is gone
        if message != b"run" or len(fds) != 4:
            os._exit(2)
        pid = spare.hand(fds)
        if pid is None:  # no spare (it could not be forked, or died idle): fork the run now
            try:
                pid = os.fork()
            except OSError as exc:
                for fd in fds:
                    os.close(fd)
                control.send(json.dumps({"type": "exit", "status": None, "error": str(exc)}).encode() + b"\n")
                spare = _Spare(control, prewarm)
                continue
            if pid == 0:
                _child(control, fds)
        for fd in fds:
            os.close(fd)
        _, status, usage = os.wait4(pid, 0)
        dirty = _dirty(dev_before, keys_before)
        tmp_free = _tmp_free_bytes()
        # Emptied now, whatever happened: nothing of this run's /tmp is left for the next.
        if not _empty_tmp():
            dirty.append("/tmp")
        control.send(json.dumps({"type": "exit", "status": status, "maxrss_kb": usage.ru_maxrss,
                                 "tmp_free_bytes": tmp_free, "dirty": dirty}).encode() + b"\n")
        # Only now, after the leftovers check and /tmp: the next run's process is forked from
        # the zygote as it was before any run, and never sees this one.
        spare = _Spare(control, prewarm)

if __name__ == "__main__":
    main(sys.argv)
