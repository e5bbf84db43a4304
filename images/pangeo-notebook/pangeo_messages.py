"""What a researcher reads first when Dask Gateway or the scratch bucket refuses something (an IPython
extension, loaded into every kernel of the image by ipython_kernel_config.py).

- A refusal by the gateway (a cluster or option beyond this hub's limits, an unknown option) is shown as
  its message alone, not under the ~100 lines of asyncio and aiohttp frames it comes through; `%tb`
  still prints the whole traceback.
- The dask-gateway client refuses an option value past the maximum the gateway publishes as soon as it is
  set, in words of its own (`worker_memory must be <= 16.000000, got 1000.0`). It is shown in the
  gateway's own wording (gateway_config.py, option_refusal; a unit test keeps the two equal).
- Access denied on the scratch bucket names the cause: another user's prefix, or your own prefix
  refused (credentials expired or revoked), with your prefix ($PANGEO_SCRATCH).
Anything else keeps IPython's usual traceback.
"""

import os

# The units of the options the gateway publishes with a maximum (gateway_config.cluster_options).
OPTION_UNITS = {"worker_cores": "cores", "worker_memory": "GiB", "idle_timeout_minutes": "minutes"}
GATEWAY_PACKAGE = "dask_gateway"
STORAGE_PACKAGES = ("s3fs", "gcsfs", "fsspec")


def option_refusal(field, value, maximum, unit):
    """The one wording of an option past its limit: the same text as gateway_config.option_refusal."""
    return f"{field}={value:g} is not allowed on this hub: choose more than 0 and at most {maximum:g} {unit}"


def _frames(tb):
    while tb is not None:
        yield tb.tb_frame
        tb = tb.tb_next


def _raised_in(tb, packages):
    """Whether the innermost frame of our packages' code is where the exception came from."""
    modules = [frame.f_globals.get("__name__", "") for frame in _frames(tb)]
    return any(m.split(".")[0] in packages for m in modules)


def client_option_refusal(value, tb):
    """The gateway's wording for the client's own `<field> must be <= <max>, got <x>`, else None."""
    if not isinstance(value, ValueError):
        return None
    for frame in _frames(tb):
        field = frame.f_locals.get("self")
        if frame.f_code.co_name == "validate" and hasattr(field, "field") and getattr(field, "max", None) is not None:
            unit = OPTION_UNITS.get(field.field)
            x = frame.f_locals.get("x")
            if unit and isinstance(x, (int, float)):
                return option_refusal(field.field, x, field.max, unit)
    return None


def scratch_refusal(value, tb):
    """An access-denied error on the scratch bucket, explained; None if it is not one."""
    own = os.environ.get("PANGEO_SCRATCH", "")
    # s3fs raises PermissionError; gcsfs an OSError("Forbidden: <path>...") for HTTP 403.
    denied = isinstance(value, PermissionError) or (isinstance(value, OSError) and str(value).startswith("Forbidden"))
    if not (denied and own and _raised_in(tb, STORAGE_PACKAGES)):
        return None
    bucket = own.rsplit("/", 1)[0]
    # The storage libraries' own frames only: the notebook's namespace may hold a `path` of its own.
    paths = [v for frame in _frames(tb) if frame.f_globals.get("__name__", "").split(".")[0] in STORAGE_PACKAGES
             for k, v in frame.f_locals.items() if k in ("path", "rpath", "lpath", "url", "urlpath") and isinstance(v, str)]
    scheme = own.split("://", 1)[0] + "://"
    paths = [p if p.startswith(scheme) else scheme + p.lstrip("/") for p in paths]
    path = next((p for p in paths if p.startswith(bucket + "/")), None)
    if path is None:
        return None
    if path == own or path.startswith(own + "/"):
        return (f"access denied to {path}, which is in your own scratch prefix ({own}): your server's "
                "credentials may have expired or been revoked. Restart your server (File > Hub Control Panel) "
                "and try again; if it persists, ask on the support forum.")
    return (f"access denied to {path}: it is not in your scratch prefix. Each user may read and write only "
            f"their own prefix, yours is {own} (os.environ['PANGEO_SCRATCH']).")


def short_message(etype, value, tb):
    """The one-paragraph message to show instead of the traceback, or None to show the traceback."""
    text = client_option_refusal(value, tb)
    if text:
        return f"{etype.__name__}: {text}"
    text = scratch_refusal(value, tb)
    if text:
        return f"{etype.__name__}: {text}"
    if _raised_in(tb, (GATEWAY_PACKAGE,)) and type(value).__module__.split(".")[0] in (GATEWAY_PACKAGE, "builtins"):
        # The gateway's refusals: its own message is the whole story (ValueError for 404/422,
        # GatewayClusterError, GatewayServerError).
        return f"{etype.__name__}: {value}"
    return None


def _show(shell, etype, value, tb, tb_offset=None):
    try:
        text = short_message(etype, value, tb)
    except Exception:  # never hide the real error behind a bug of ours
        text = None
    if text is None:
        shell.showtraceback((etype, value, tb), tb_offset=tb_offset)
        return None
    shell._last_traceback = None
    # As IPython shows any error (ipykernel: an `error` message, the cell marked failed), with our text.
    shell._showtraceback(etype, text.split(": ", 1)[1], [f"{text}\n(the whole traceback: %tb)"])
    return None


def load_ipython_extension(ipython):
    ipython.set_custom_exc((Exception,), _show)


