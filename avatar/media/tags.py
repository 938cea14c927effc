"""Key/value tags inside image formats that have no tag dictionary of their own.

GIF keeps them as JSON in its comment extension; WebP (and any XMP carrier) as an XMP packet
with one property per tag in the ``avatar:`` namespace, plus the standard fields other tools
show (dc:description, xmp:CreatorTool, the IPTC digital source type when the tags name one).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from xml.sax.saxutils import quoteattr

__all__ = ["tags_from_json", "tags_from_xmp", "tags_to_json", "tags_to_xmp"]

NS = "https://github.com/avatar/avatar/ns/1.0/"  # the avatar: XMP namespace
_RDF = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
_TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def tags_to_json(tags: dict[str, str]) -> str:
    """The tags as one JSON object (a GIF comment)."""
    return json.dumps({str(k): str(v) for k, v in tags.items()}, ensure_ascii=False, sort_keys=True)


def tags_from_json(text: str | bytes) -> dict[str, str]:
    """Tags from :func:`tags_to_json` text; {} for any other comment."""
    try:
        data = json.loads(text.decode("utf-8") if isinstance(text, bytes) else text)
    except (ValueError, UnicodeDecodeError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def tags_to_xmp(tags: dict[str, str]) -> bytes:
    """An XMP packet carrying every tag as ``avatar:KEY`` (keys must be XML names)."""
    props = "".join(f"\n    avatar:{k}={quoteattr(str(v))}" for k, v in tags.items())
    extra = ""
    if tags.get("ai_generated") == "true":
        extra = f'\n    Iptc4xmpExt:DigitalSourceType="{_TRAINED}"'
    tool = tags.get("software", "")
    desc = tags.get("comment", "")
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f' <rdf:RDF xmlns:rdf="{_RDF}">\n'
        '  <rdf:Description rdf:about=""\n'
        f'    xmlns:avatar="{NS}"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        '    xmlns:dc="http://purl.org/dc/elements/1.1/"\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        f'    xmp:CreatorTool={quoteattr(tool)}{extra}{props}>\n'
        f'   <dc:description><rdf:Alt><rdf:li xml:lang="x-default">{_escape(desc)}</rdf:li></rdf:Alt></dc:description>\n'
        '  </rdf:Description>\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="r"?>'
    ).encode("utf-8")


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def tags_from_xmp(packet: str | bytes) -> dict[str, str]:
    """The ``avatar:`` properties of an XMP packet (attributes or elements); {} if none or unparsable."""
    text = packet.decode("utf-8", "replace") if isinstance(packet, bytes) else packet
    start, end = text.find("<x:xmpmeta"), text.rfind("</x:xmpmeta>")
    if start < 0 or end < 0:
        return {}
    try:
        root = ET.fromstring(text[start:end + len("</x:xmpmeta>")])
    except ET.ParseError:
        return {}
    out: dict[str, str] = {}
    prefix = "{" + NS + "}"
    for desc in root.iter(f"{{{_RDF}}}Description"):
        out.update({k[len(prefix):]: v for k, v in desc.attrib.items() if k.startswith(prefix)})
        out.update({el.tag[len(prefix):]: el.text or "" for el in desc if el.tag.startswith(prefix)})
    return out
