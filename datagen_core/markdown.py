"""User- and model-supplied strings made safe for markdown: what the studio and the dataset card show.

Markdown renderers (Streamlit's `st.markdown`, captions, alerts, widget labels; a dataset card on a hub) draw
images (a request to any host), links, HTML and formatting. A label name, a gene, a task, a sample or an
endpoint's error message put there as is could do any of that. `md` escapes such a string so it shows exactly as
written; `code` puts one in an inline code span.
"""

from __future__ import annotations

import re

#: Inline markdown anywhere: escapes, code, emphasis, strikethrough, links and images, HTML, entities, LaTeX,
#: tables (group 1). Underscores between letters or digits never start emphasis, so `not_spam` stays as it is.
_INLINE = re.compile(r"(?<=[^\W_])_+(?=[^\W_])|([\\`*~\[\]<&$|_])")
#: Block markers that only count at the start of a line: headings, quotes, list items, setext underlines.
_LINE_START = re.compile(r"^([ \t]*(?:\d+(?=[.)]))?)([#>+\-=.)])", re.MULTILINE)
#: Streamlit's shortcodes (emoji, `:material/...:` icons, `:streamlit:`) are matched in the parsed text, where a
#: backslash no longer is: a zero-width space after the colon keeps them as written.
_SHORTCODE = re.compile(r":(?=material/|[A-Za-z+-][\w+-]*:)")
#: Bare URLs and e-mail addresses, which GFM makes links whatever is escaped around them: `md` puts each in an
#: inline code span, where no renderer makes links, and a copied URL stays exactly as written.
_AUTOLINK = re.compile(r"(?i)\b(?:https?://|www\.)[^\s<>`]*[^\s<>`.,;:!?)\]'\"]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_SLOT = re.compile("\x00(\\d+)\x00")
#: Leading spaces or tabs (four start a code block, which would show the escapes): non-breaking spaces instead.
_INDENT = re.compile(r"^[ \t]+", re.MULTILINE)


def md(text: object) -> str:
    """`text` escaped for a Streamlit markdown context, so it shows exactly as written (plain words unchanged)."""
    lines = "\n".join(str(text).replace("\x00", "").splitlines())  # markdown also ends a line at a lone CR
    urls: list[str] = []

    def slot(match: re.Match[str]) -> str:  # URLs wait in numbered slots while the rest is escaped
        urls.append(match.group(0))
        return f"\x00{len(urls) - 1}\x00"

    escaped = _INLINE.sub(lambda m: "\\" + m.group(1) if m.group(1) else m.group(0), _AUTOLINK.sub(slot, lines))
    escaped = _LINE_START.sub(r"\1\\\2", escaped)
    escaped = _INDENT.sub(lambda m: "\u00a0" * len(m.group(0).expandtabs(4)), escaped)
    escaped = _SHORTCODE.sub(":\u200b", escaped)
    return _SLOT.sub(lambda m: code(urls[int(m.group(1))]), escaped)


def code(text: object) -> str:
    """`text` as one inline code span (in a label: "Label `spam`"), whatever backticks it holds."""
    flat = " ".join(str(text).split())
    fence = "`" * (max((len(run) for run in re.findall(r"`+", flat)), default=0) + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}" if flat else ""
