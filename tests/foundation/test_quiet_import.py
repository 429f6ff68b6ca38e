"""Import-time notices of nibabel and Authlib are silenced at their first import only.

Each use of ``warnings.catch_warnings`` swaps process-wide state (not thread-safe): the
CSA reader of every Siemens mosaic slice and every OAuth client creation did it. Now
only the first import of the module does, and the filters a library adds while it is
imported (``authlib.deprecate`` adds an "always" one) do not outlive it. A fresh
interpreter, so that neither module is imported yet.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

_SCRIPT = textwrap.dedent(
    r"""
    import warnings
    from dicomstation.quiet_import import import_quietly

    filters = list(warnings.filters)
    with warnings.catch_warnings(record=True) as caught:  # the application's capture
        warnings.simplefilter("always")
        csa = import_quietly("nibabel.nicom.csareader")
        oauth = import_quietly(
            "authlib.integrations.httpx_client", Warning, first=("authlib.deprecate",)
        )
        seen = [str(w.message) for w in caught]
        warnings.warn("the application's own warning", UserWarning)
        mine = [str(w.message) for w in caught]
    assert seen == [], seen
    assert mine == ["the application's own warning"], mine
    assert list(warnings.filters) == filters, "a filter outlived the first import"

    def forbidden(*args, **kwargs):
        raise AssertionError("catch_warnings after the first import")

    warnings.catch_warnings = forbidden
    assert import_quietly("nibabel.nicom.csareader") is csa
    assert import_quietly("authlib.integrations.httpx_client", Warning) is oauth
    assert hasattr(csa, "get_csa_header") and hasattr(oauth, "OAuth2Client")
    # the call sites: every mosaic slice examined, every OAuth client made
    from pydicom.dataset import Dataset
    from dicomstation.auth_oidc.provider import authlib
    from dicomstation.volumes.mosaic import _csa_tags

    assert authlib()[0] is oauth.OAuth2Client
    assert _csa_tags(Dataset()) is None
    print("ok")
    """
)


def test_notices_silenced_once_and_filters_untouched() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
