"""The data plane's XML bodies, as the File service writes them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from xml.sax.saxutils import escape

HEAD = '<?xml version="1.0" encoding="utf-8"?>'


def error(code: str, message: str, request_id: str, time: str) -> bytes:
    return (f"{HEAD}<Error><Code>{escape(code)}</Code><Message>{escape(message)}\n"
            f"RequestId:{request_id}\nTime:{time}</Message></Error>").encode()


def _meta(metadata: Mapping[str, str]) -> str:
    return "<Metadata>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in metadata.items()) \
        + "</Metadata>"


def _opt(tag: str, value: str | int | None) -> str:
    if value is None or value == "":
        return f"<{tag} />"
    return f"<{tag}>{escape(str(value))}</{tag}>"


def shares(endpoint: str, prefix: str, marker: str, maxresults: int | None,
           items: Iterable[tuple[str, str, str, int, Mapping[str, str] | None]],
           next_marker: str) -> bytes:
    """List Shares: items are (name, last-modified, etag, quota, metadata or None)."""
    out = [HEAD, f'<EnumerationResults ServiceEndpoint="{escape(endpoint)}">']
    if prefix:
        out.append(_opt("Prefix", prefix))
    if marker:
        out.append(_opt("Marker", marker))
    if maxresults is not None:
        out.append(_opt("MaxResults", maxresults))
    out.append("<Shares>")
    for name, modified, etag, quota, metadata in items:
        out.append(f"<Share><Name>{escape(name)}</Name><Properties>"
                   f"<Last-Modified>{modified}</Last-Modified><Etag>{escape(etag)}</Etag>"
                   f"<Quota>{quota}</Quota><AccessTier>TransactionOptimized</AccessTier>"
                   f"<EnabledProtocols>SMB</EnabledProtocols></Properties>")
        if metadata is not None:
            out.append(_meta(metadata))
        out.append("</Share>")
    out.append("</Shares>")
    out.append(_opt("NextMarker", next_marker))
    out.append("</EnumerationResults>")
    return "".join(out).encode()


def entries(endpoint: str, share: str, directory: str, directory_id: str, prefix: str,
            marker: str, maxresults: int | None, items: Iterable[str],
            next_marker: str) -> bytes:
    """List Directories and Files: items are ready ``<File>``/``<Directory>`` elements."""
    out = [HEAD, f'<EnumerationResults ServiceEndpoint="{escape(endpoint)}" '
           f'ShareName="{escape(share)}" DirectoryPath="{escape(directory)}">']
    if marker:
        out.append(_opt("Marker", marker))
    if prefix:
        out.append(_opt("Prefix", prefix))
    if maxresults is not None:
        out.append(_opt("MaxResults", maxresults))
    out.append(f"<DirectoryId>{directory_id}</DirectoryId><Entries>")
    out.extend(items)
    out.append("</Entries>")
    out.append(_opt("NextMarker", next_marker))
    out.append("</EnumerationResults>")
    return "".join(out).encode()


def entry(kind: str, name: str, file_id: str, *, size: int | None,
          times: Mapping[str, str] | None, etag: str | None, attributes: str | None) -> str:
    props = ""
    if size is not None:
        props += f"<Content-Length>{size}</Content-Length>"
    if times is not None:
        props += "".join(f"<{k}>{v}</{k}>" for k, v in times.items())
    if etag is not None:
        props += f"<Etag>{escape(etag)}</Etag>"
    text = (f"<{kind}><FileId>{file_id}</FileId><Name>{escape(name)}</Name>"
            f"<Properties>{props}</Properties>")
    if attributes is not None:
        text += (f"<Attributes>{attributes}</Attributes>"
                 f"<PermissionKey>{PERMISSION_KEY}</PermissionKey>")
    return text + f"</{kind}>"


def stats(usage: int) -> bytes:
    return f"{HEAD}<ShareStats><ShareUsageBytes>{usage}</ShareUsageBytes></ShareStats>".encode()


def ranges(spans: Iterable[tuple[int, int]]) -> bytes:
    body = "".join(f"<Range><Start>{s}</Start><End>{e}</End></Range>" for s, e in spans)
    return f"{HEAD}<Ranges>{body}</Ranges>".encode()


SERVICE_PROPERTIES = (
    f"{HEAD}<StorageServiceProperties>"
    "<HourMetrics><Version>1.0</Version><Enabled>false</Enabled>"
    "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></HourMetrics>"
    "<MinuteMetrics><Version>1.0</Version><Enabled>false</Enabled>"
    "<RetentionPolicy><Enabled>false</Enabled></RetentionPolicy></MinuteMetrics>"
    "<Cors /></StorageServiceProperties>").encode()

ACL = f"{HEAD}<SignedIdentifiers />".encode()

#: The one SMB permission every file and directory answers (skiff keeps no ACLs).
PERMISSION_KEY = "4066528134148476695*1"
