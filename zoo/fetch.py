"""Turn a checkpoint source into a local file path (package resources, local files, Hub, URLs).

Hub files go through `hf_hub_download` into the standard Hugging Face cache (`HF_HOME`,
`HF_HUB_CACHE`, `HF_HUB_OFFLINE` as huggingface_hub reads them). Files on plain web servers go
to `$HF_HOME/assets/gan-rewriting/downloads/<host>/`, the cache huggingface_hub sets aside for
libraries' own files. A known sha256 (or, for URLs, torch.hub's hash prefix) is checked on every
load, a package's embedded file included. A download that fails the check is never kept; a
cached file that fails it is deleted, and so is the blob it links to, but only inside the cache.
A file that is neither cached nor downloadable fails with one message that says how to get it,
including where to place a copy by hand.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import os
import re
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from urllib.parse import urlsplit

from huggingface_hub import (
    constants,
    get_hf_file_metadata,
    hf_hub_download,
    hf_hub_url,
    try_to_load_from_cache,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    LocalEntryNotFoundError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from huggingface_hub.utils import cached_assets_path
from huggingface_hub.utils import tqdm as hf_tqdm

from plugins.base import HubFile, LocalFile, ModelEntry, PackageFile, Source, UrlFile
from rewriting.atomic import write_atomically
from rewriting.errors import RewritingError
from rewriting.limits import check_repo_id, check_revision

from .checkpoint import file_sha256

Progress = Callable[[float, str], None]

#: Seconds to wait for a web server before calling it unreachable.
URL_TIMEOUT = 30
#: Seconds `hub_reachable` waits for the Hub to answer.
REACH_TIMEOUT = 3
#: torch.hub's convention: "name-<start of sha256>.ext" (used when the catalog gives no hash).
HASH_IN_NAME = re.compile(r"-([a-f0-9]{6,})\.")
#: Set while serving a visitor: Hub requests then carry no token (context-local, so per thread).
_ANONYMOUS: ContextVar[bool] = ContextVar("anonymous_hub", default=False)


@contextmanager
def anonymous_hub() -> Iterator[None]:
    """Hub requests inside go without the machine's token: a visitor reads public files only."""
    reset = _ANONYMOUS.set(True)
    try:
        yield
    finally:
        _ANONYMOUS.reset(reset)


def hub_is_anonymous() -> bool:
    """Whether Hub requests in this context go without a token."""
    return _ANONYMOUS.get()


def hub_reachable(timeout: float = REACH_TIMEOUT) -> bool:
    """Whether the Hub answers a HEAD request within `timeout` seconds (never when
    HF_HUB_OFFLINE is set)."""
    if constants.is_offline_mode():
        return False
    try:
        urllib.request.urlopen(urllib.request.Request(hub_endpoint(), method="HEAD"),
                               timeout=timeout).close()
    except urllib.error.HTTPError:
        return True  # it answered
    except (OSError, ValueError):
        return False
    return True


def hub_endpoint() -> str:
    """The Hub to use: $HF_ENDPOINT as set now (huggingface_hub reads it once, at import)."""
    return os.environ.get("HF_ENDPOINT", constants.ENDPOINT).rstrip("/")


def manual_path(source: HubFile | UrlFile) -> Path:
    """Where a URL download is cached, and where a copy made by hand is picked up."""
    if isinstance(source, UrlFile):
        where, name = urlsplit(source.url).netloc, Path(urlsplit(source.url).path).name
    else:
        where, name = f"hub--{source.repo_id}", source.filename
    folder = cached_assets_path(
        library_name="gan-rewriting", namespace="downloads", subfolder=where.replace(":", "_"),
        assets_dir=constants.HF_ASSETS_CACHE,
    )
    return folder / name


def cached_path(source: Source) -> Path | None:
    """The local copy of `source` if one is already there, found without any network access."""
    if isinstance(source, HubFile):
        check_repo_id(source.repo_id)
        check_revision(source.revision)
        hit = try_to_load_from_cache(source.repo_id, source.filename, revision=source.revision)
        if isinstance(hit, str):
            return Path(hit)
    if isinstance(source, HubFile | UrlFile):
        path = manual_path(source)
        return path if path.is_file() else None
    try:
        return resolve(source)
    except RewritingError:
        return None


def availability(entry: ModelEntry) -> str:
    """Whether a model's weights are on this machine (no network used): "installed" (a package
    or local file), "downloaded" (in the cache), or "download" with the size when known."""
    here = cached_path(entry.source) is not None
    if isinstance(entry.source, PackageFile | LocalFile):
        return "installed" if here else "not installed"
    if here:
        return "downloaded"
    size = f", {entry.size_bytes / 2**20:.0f} MB" if entry.size_bytes else ", size unknown"
    return f"download{size}"


def resolve(source: Source, progress: Progress | None = None) -> Path:
    """A local path holding the checkpoint of `source`, downloading into the cache if needed."""
    if isinstance(source, LocalFile):
        path = Path(source.path).expanduser()
        if not (path.is_file() or (path / "config.json").is_file()):  # a file, or converted folder
            raise RewritingError(f"checkpoint file {path} does not exist")
        return path
    if isinstance(source, PackageFile):
        try:
            root = importlib.resources.files(source.package)
        except ModuleNotFoundError:
            raise RewritingError(
                f"the weights ship in the Python package {source.package!r}, which is not "
                f"installed; install it (see the README)"
            ) from None
        path = Path(str(root / source.resource))
        inside = path.resolve().is_relative_to(Path(str(root)).resolve())
        if not inside or not path.is_file():
            raise RewritingError(f"package {source.package!r} has no resource {source.resource!r}")
        actual = file_sha256(path)
        if source.sha256 and not actual.startswith(source.sha256.lower()):
            raise RewritingError(
                f"{path} is not the file the catalog pins (its sha256 is {actual[:16]}..., "
                f"expected {source.sha256[:16]}...): reinstall the package that ships it"
            )
        return path
    if isinstance(source, HubFile):
        return _hub_file(source, progress)
    if isinstance(source, UrlFile):
        return _url_file(source, progress)
    raise RewritingError(f"unknown checkpoint source {source!r}")


def _in_cache(path: Path) -> bool:
    """Whether `path` lies in the Hugging Face hub cache or this tool's downloads cache."""
    caches = (constants.HF_HUB_CACHE, constants.HF_ASSETS_CACHE)
    return any(path.is_relative_to(Path(cache).resolve()) for cache in caches)


def _check_sha256(path: Path, expected: str | None, what: str) -> None:
    """Fail unless the sha256 of `path` starts with `expected`, deleting it from the cache.

    A cached path may be a link (the hub cache links snapshots to blobs, and a copy placed by
    hand may be a link): the link goes, and what it points to only if that is in a cache too.
    """
    if not expected:
        return
    actual = file_sha256(path)
    if actual.startswith(expected.lower()):
        return
    link, target = path.parent.resolve() / path.name, path.resolve()
    for item in dict.fromkeys((link, target)):
        if _in_cache(item):
            item.unlink(missing_ok=True)
    raise RewritingError(
        f"{what} is corrupt or not the expected file: its sha256 is {actual[:16]}..., "
        f"expected {expected[:16]}...; it was removed from the cache, run again to download it "
        "anew"
    )


def _unavailable(what: str, url: str, place: Path, cause: BaseException | None) -> RewritingError:
    """The one message for a file that is neither cached nor downloadable."""
    if constants.is_offline_mode():
        reason, fix = "HF_HUB_OFFLINE is set", "unset HF_HUB_OFFLINE on a connected machine"
    else:
        first = (str(cause).splitlines() or [type(cause).__name__])[0] if cause else ""
        detail = f": {first[:160]}" if first else ""
        reason, fix = f"cannot reach {urlsplit(url).netloc}{detail}", "connect to the network"
    return RewritingError(
        f"{what} is not in the local cache and cannot be downloaded ({reason}). To fix: "
        f"{fix} and run again, or download {url} elsewhere and place the file at {place}"
    )


def _progress_class(progress: Progress | None, label: str) -> type[hf_tqdm] | None:
    """A tqdm class that forwards download progress to `progress` (None: the usual bar)."""
    if progress is None:
        return None

    class Forward(hf_tqdm):
        done = 0.0  # counted here: a disabled bar does not count

        def update(self, n: float | None = 1) -> bool | None:
            self.done += n or 0
            if self.total:
                progress(min(self.done / self.total, 1.0), label)
            return super().update(n)

    return Forward


def _probe(url: str, cached: bool) -> None:
    """One HEAD request without retries, so that an unreachable Hub fails at once.

    hf_hub_download retries a failed request for about 25 s before it gives up on a file that
    is not cached; a cached file needs no probe (the client falls back to it without retrying),
    except for a visitor: the Hub must then say the file is public, since the machine's own
    cache may hold private files. Only a refusal counts then; an unreachable Hub leaves the
    cached copy usable.
    """
    anonymous = hub_is_anonymous()
    if cached and not anonymous:
        return
    try:
        get_hf_file_metadata(url, token=False if anonymous else None)
    except HfHubHTTPError as err:
        if err.response.status_code < 500:
            raise
        if not cached:
            raise LocalEntryNotFoundError(str(err)) from err
    except Exception as err:  # the client's transport errors (httpx or httpx2, by version)
        if not cached:
            raise LocalEntryNotFoundError(str(err)) from err


def _hub_file(source: HubFile, progress: Progress | None) -> Path:
    check_repo_id(source.repo_id)  # the Hub client names cache folders and files after both
    check_revision(source.revision)
    endpoint = hub_endpoint()
    what = f"{source.repo_id}/{source.filename} (revision {source.revision})"
    url = hf_hub_url(source.repo_id, source.filename, revision=source.revision, endpoint=endpoint)
    cached = try_to_load_from_cache(source.repo_id, source.filename, revision=source.revision)
    try:
        if not constants.is_offline_mode():
            _probe(url, isinstance(cached, str))
        path = Path(
            hf_hub_download(
                source.repo_id, source.filename, revision=source.revision, endpoint=endpoint,
                token=False if hub_is_anonymous() else None,
                tqdm_class=_progress_class(progress, f"downloading {source.filename}"),
            )
        )
    except LocalEntryNotFoundError as err:
        path = manual_path(source)
        if not path.is_file():
            raise _unavailable(what, url, path, err.__cause__) from None
    except GatedRepoError:
        raise RewritingError(
            f"{source.repo_id} is gated on the Hub: accept its terms on the Hub's page, then set "
            "HF_TOKEN to a token of that account"
        ) from None
    except RepositoryNotFoundError:
        raise RewritingError(
            f"the Hub at {endpoint} has no repository {source.repo_id} (or it is private: set "
            "HF_TOKEN to a token that can read it)"
        ) from None
    except RevisionNotFoundError:
        raise RewritingError(f"{source.repo_id} has no revision {source.revision!r}") from None
    except RemoteEntryNotFoundError:
        raise RewritingError(
            f"{source.repo_id} (revision {source.revision}) has no file {source.filename!r}"
        ) from None
    except HfHubHTTPError as err:
        raise RewritingError(
            f"the Hub refused {what}: HTTP {err.response.status_code}; try again later"
        ) from None
    _check_sha256(path, source.sha256, what)
    return path


def _url_file(source: UrlFile, progress: Progress | None) -> Path:
    path = manual_path(source)
    what = f"checkpoint {path.name}"
    named = HASH_IN_NAME.search(path.name)
    expected = source.sha256 or (named.group(1) if named else None)
    if path.is_file():
        _check_sha256(path, expected, what)
        return path
    if constants.is_offline_mode():
        raise _unavailable(what, source.url, path, None)

    def download(tmp: str) -> None:
        digest = hashlib.sha256()
        with open(tmp, "wb") as out, urllib.request.urlopen(
            source.url, timeout=URL_TIMEOUT
        ) as response:
            total = int(response.headers.get("Content-Length") or 0)
            with hf_tqdm(
                total=total or None, unit="B", unit_scale=True, desc=path.name,
                disable=progress is not None,
            ) as bar:
                done = 0
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
                    done += len(block)
                    if progress and total:
                        progress(min(done / total, 1.0), f"downloading {path.name}")
        actual = digest.hexdigest()
        if expected and not actual.startswith(expected.lower()):
            raise RewritingError(
                f"the download of {source.url} is corrupt or not the expected file: its sha256 "
                f"is {actual[:16]}..., expected {expected[:16]}...; nothing was kept, run again "
                "to retry"
            )

    try:
        write_atomically(path, download)
    except urllib.error.HTTPError as err:
        raise RewritingError(f"{source.url} answered HTTP {err.code}: {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise _unavailable(what, source.url, path, getattr(err, "reason", err)) from None
    return path
