"""Every failure reaches the person as a readable message, never as a traceback or a blank error."""

from __future__ import annotations

import functools
import logging
import traceback

import gradio as gr

log = logging.getLogger("skin-demo")


def user_error(message: str, title: str = "Error") -> gr.Error:
    """An expected failure: shown to the person, not printed as a traceback in the server log
    (which would carry upload names and paths)."""
    return gr.Error(message, title=title, print_exception=False)


def said_on_page(exc: gr.Error) -> str:
    """A failure told once in a toast and kept on the page as Markdown (for the output that shows it), for page
    events that empty their outputs instead of failing: a failed event leaves bare "Error" badges on its outputs
    once the toast has gone."""
    gr.Warning(exc.message, title=exc.title)
    return f"⚠️ **{exc.title}:** {exc.message}"


def user_facing(fn):
    """Let gr.Error through; turn anything unexpected into a plain message, logged without user data."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except MemoryError:
            raise user_error("The server ran out of memory for this request; try a smaller image.",
                             "Too large") from None
        except Exception as exc:
            where = traceback.extract_tb(exc.__traceback__)[-1]
            # type and place only: the message may hold an upload's name or path
            log.error("%s failed: %s at %s:%s", fn.__name__, type(exc).__name__, where.filename, where.lineno)
            raise user_error("Something went wrong while processing this request. Please try again or try "
                             "another image.", "Internal error") from None

    return wrapper
