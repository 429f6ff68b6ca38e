"""OHIF 3 on the local database, served by the UI at ``/viewer/`` (same origin, no CORS).

The viewer is the prebuilt ``dist`` of the npm package ``@ohif/app`` (version
:data:`OHIF_VERSION`), unpacked by :func:`install_ohif` (``dicomstation viewer
install``, ``make test``/``make demo``) into the user data dir. The dist is built
for the site root, so the installer rewrites its few absolute paths for
``/viewer/``; the app configuration is generated at request time and points
OHIF's DICOMweb data source at this server's own ``/dicom-web``. Requests are
same-origin, so the browser's token cookie admits them (see
:mod:`dicomstation.server.access`); OHIF's STOW-RS of a SEG is a same-origin POST.

Without an installed viewer ``/viewer/`` answers a page saying how to install it
and ``/api/ohif`` says ``installed: false``; the rest of the UI works as before.
Serving (FastAPI, Starlette) is in :mod:`.ohif_mount`: finding and installing the
viewer (``dicomstation viewer status/install``) imports no web framework.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs

from dicomstation.errors import ConfigError

__all__ = [
    "OHIF_PACKAGE",
    "OHIF_VERSION",
    "PREFIX",
    "OhifInstall",
    "app_config",
    "default_ohif_root",
    "find_ohif",
    "install_ohif",
]

OHIF_PACKAGE = "@ohif/app"
OHIF_VERSION = "3.13.2"  # pinned: `npm view @ohif/app versions` (latest stable tag)
PREFIX = "/viewer"
MARKER = ".dicomstation-ohif.json"
INSTALL_HINT = (
    "OHIF is not installed: run `dicomstation viewer install` (needs npm) "
    "or `make ohif` in a source checkout"
)
_NPM_TIMEOUT = 600.0


@dataclass(frozen=True)
class OhifInstall:
    """An unpacked, path-rewritten OHIF dist ready to serve."""

    path: Path
    version: str


def default_ohif_root() -> Path:
    """Where viewers are installed: ``<user data dir>/dicomstation/ohif``."""
    return Path(platformdirs.user_data_dir("dicomstation")) / "ohif"


def find_ohif(root: Path | None = None, version: str = OHIF_VERSION) -> OhifInstall | None:
    """The installed viewer of ``version`` under ``root`` (None when not installed)."""
    folder = (root or default_ohif_root()) / version
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if marker.get("version") != version or not (folder / "index.html").is_file():
        return None
    return OhifInstall(folder, version)


# -- installing ---------------------------------------------------------------------------
def _npm_pack(npm: str, spec: str, into: Path) -> Path:
    """Download the package tarball with ``npm pack`` (no dependencies, no scripts)."""
    try:
        done = subprocess.run(  # fixed argv, no shell
            [npm, "pack", spec, "--silent", "--ignore-scripts"],
            cwd=into,
            capture_output=True,
            text=True,
            timeout=_NPM_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"npm pack {spec} took longer than {_NPM_TIMEOUT:g} s") from None
    tarballs = sorted(into.glob("*.tgz"))
    if done.returncode != 0 or not tarballs:
        last = (done.stderr.strip().splitlines() or ["no tarball written"])[-1]
        raise ConfigError(f"npm pack {spec} failed: {last}")
    return tarballs[0]


def _extract_dist(tarball: Path, into: Path) -> Path:
    """Unpack ``package/dist/`` only; members that leave the folder are refused."""
    with tarfile.open(tarball, "r:gz") as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("package/dist/")]
        if not members:
            raise ConfigError(f"{tarball.name} has no package/dist: not the OHIF app package")
        tar.extractall(into, members=members, filter="data")
    return into / "package" / "dist"


def _rewrite(path: Path, pairs: list[tuple[str, str]]) -> None:
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    for old, new in pairs:
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8", errors="surrogateescape")


def rewrite_for_prefix(dist: Path, prefix: str = PREFIX) -> None:
    """Make a dist built for ``/`` work under ``prefix/`` (webpack public path, links).

    The service worker registration is dropped: nothing of a patient viewer should
    be cached in the browser beyond the page's life.
    """
    base = prefix.rstrip("/") + "/"
    for script in dist.rglob("*.js"):
        if '__webpack_require__.p = "/"' in script.read_text(encoding="utf-8", errors="replace"):
            _rewrite(script, [('__webpack_require__.p = "/"', f'__webpack_require__.p = "{base}"')])
    for sheet in dist.glob("*.css"):
        _rewrite(sheet, [("url(/", f"url({base}")])
    _rewrite(
        dist / "index.html",
        [
            (
                '<script rel="preload" as="script" type="module" src="/init-service-worker.js">'
                "</script>",
                "",
            ),
            ('window.PUBLIC_URL="/"', f'window.PUBLIC_URL="{base}"'),
            ('href="/', f'href="{base}'),
            ('src="/', f'src="{base}'),
        ],
    )


def install_ohif(
    root: Path | None = None, version: str = OHIF_VERSION, *, npm: str | None = None
) -> OhifInstall:
    """Download ``@ohif/app@version`` with npm and unpack its dist under ``root/version``.

    Does nothing when that version is installed already. The new folder appears
    only when complete (unpacked in a sibling folder, then renamed).

    Raises
    ------
    ConfigError
        When npm is missing, the download fails, or the tarball is not OHIF's.
    """
    root = root or default_ohif_root()
    found = find_ohif(root, version)
    if found is not None:
        return found
    npm = npm or shutil.which("npm")
    if npm is None:
        raise ConfigError("npm is not installed: install Node.js and npm (apt install npm)")
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".ohif-", dir=root) as tmp:
        work = Path(tmp)
        dist = _extract_dist(_npm_pack(npm, f"{OHIF_PACKAGE}@{version}", work), work)
        rewrite_for_prefix(dist)
        (dist / MARKER).write_text(json.dumps({"version": version, "prefix": PREFIX}))
        target = root / version
        if target.exists():
            shutil.rmtree(target)
        dist.rename(target)
    installed = find_ohif(root, version)
    if installed is None:  # pragma: no cover - the rename just made it
        raise ConfigError(f"OHIF {version} did not install into {root}")
    return installed


# -- serving ------------------------------------------------------------------------------
def app_config(dicomweb_prefix: str) -> str:
    """OHIF's ``app-config.js``: one DICOMweb data source, this server's own DICOMweb."""
    source = {
        "namespace": "@ohif/extension-default.dataSourcesModule.dicomweb",
        "sourceName": "dicomstation",
        "configuration": {
            "friendlyName": "dicomstation local database",
            "name": "dicomstation",
            "qidoSupportsIncludeField": True,
            "imageRendering": "wadors",
            "thumbnailRendering": "wadors",
            "enableStudyLazyLoad": True,
            "supportsFuzzyMatching": False,
            "supportsWildcard": True,
            "staticWado": False,
            "singlepart": "bulkdata,video",
            "bulkDataURI": {"enabled": True, "relativeResolution": "studies"},
            "omitQuotationForMultipartRequest": True,
            "dicomUploadEnabled": True,
        },
    }
    config = {
        "name": "dicomstation",
        "routerBasename": PREFIX,
        "extensions": [],
        "modes": [],
        "customizationService": {},
        "showStudyList": True,
        "maxNumberOfWebWorkers": 2,
        "showWarningMessageForCrossOrigin": False,
        "showCPUFallbackMessage": True,
        "showLoadingIndicator": True,
        "strictZSpacingForVolumeViewport": True,
        "groupEnabledModesFirst": True,
        "maxNumRequests": {"interaction": 100, "thumbnail": 5, "prefetch": 10},
        "showErrorDetails": "always",
        "defaultDataSourceName": "dicomstation",
        "dataSources": [source],
    }
    root = json.dumps(dicomweb_prefix.rstrip("/"))
    return (
        "// Generated by dicomstation: OHIF on this server's own DICOMweb (same origin).\n"
        f"window.config = {json.dumps(config, indent=2)};\n"
        f"(function () {{ const root = window.location.origin + {root};\n"
        "  for (const key of ['qidoRoot', 'wadoRoot', 'wadoUriRoot']) {\n"
        "    window.config.dataSources[0].configuration[key] = root; } })();\n"
    )
