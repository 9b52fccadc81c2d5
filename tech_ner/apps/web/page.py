"""The HTML page: the form, the highlighted text (displaCy) and the terms; the pipeline's name as shown."""

from pathlib import Path
from typing import Optional, Union


from .settings import ServeSettings
from .worker import Extraction

DISPLACY_COLORS = {"TECH": "#7aecec"}


SPACY_DEFAULT_META = {"name": "pipeline", "version": "0.0.0"}


def pipeline_name(nlp, source: Optional[Union[str, Path]] = None) -> str:
    """The name to show for a pipeline: its meta's name and version (`en_tech_ner 1.0.0`), or, when the meta has
    spaCy's defaults (a training output), the folder it was loaded from.

    source (Optional[Union[str, Path]]): The folder or package name it was loaded from, if known.
    RETURNS (str): The name.
    """
    meta = nlp.meta or {}
    name = meta.get("name") or SPACY_DEFAULT_META["name"]
    lang = meta.get("lang") or nlp.lang
    version = meta.get("version")
    if name == SPACY_DEFAULT_META["name"]:
        if source is not None:
            return Path(str(source)).resolve().name if Path(str(source)).exists() else str(source)
        return f"an unnamed {lang} pipeline"
    full = name if name.startswith(f"{lang}_") else f"{lang}_{name}"
    return f"{full} {version}" if version and version != SPACY_DEFAULT_META["version"] else full


def render_entities(extraction: Extraction) -> str:
    """The text with its entities highlighted: displaCy's entity renderer (its `mark` elements).

    RETURNS (str): HTML; displaCy escapes the text.
    """
    import warnings

    from spacy import displacy

    doc = {
        "text": extraction.text,
        "title": None,
        "ents": [{"start": s, "end": e, "label": label} for s, e, label in extraction.entities],
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # W006: no entities to visualise is a result here, not a problem
        return displacy.render(
            doc, style="ent", manual=True, page=False, jupyter=False, options={"colors": DISPLACY_COLORS}
        )


PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{% if result %}{{ result.terms|length }} terms · {% endif %}Technology terms</title>
<style>
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem 1.5rem; color: #222; }
header { display: flex; align-items: baseline; gap: 1rem; flex-wrap: wrap; }
header h1 { margin: 0.3rem 0; font-size: 1.6rem; }
header span { color: #666; }
.forms { display: grid; grid-template-columns: 2fr 1fr; gap: 1rem; margin: 1rem 0; }
form { border: 1px solid #ddd; border-radius: 0.4rem; padding: 0.8rem; }
form h2 { font-size: 1rem; margin: 0 0 0.5rem; }
textarea { width: 100%; box-sizing: border-box; min-height: 9rem; font: inherit; }
input[type=url] { width: 100%; box-sizing: border-box; font: inherit; }
button { margin-top: 0.5rem; font: inherit; padding: 0.3rem 0.9rem; }
.side { display: flex; flex-direction: column; gap: 1rem; }
.error { background: #fdecea; border: 1px solid #f5c2c0; padding: 0.7rem 1rem; border-radius: 0.4rem; }
.source { color: #555; word-break: break-all; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { text-align: left; padding: 0.2rem 0.8rem; border-bottom: 1px solid #eee; }
td.count { text-align: right; }
.note { color: #666; font-size: 0.9rem; }
@media (max-width: 50rem) { .forms { grid-template-columns: 1fr; } }
</style>
</head>
<body>
<header><h1>Technology terms</h1><span>{{ model }}</span></header>
<div class="forms">
  <form method="post" action="/extract" id="text-form">
    <h2><label for="text">Paste text</label></h2>
    <textarea id="text" name="text" required>{{ text }}</textarea>
    <button type="submit" id="extract-text">Extract terms</button>
  </form>
  <div class="side">
    <form method="post" action="/extract-url" id="url-form">
      <h2><label for="url">Or a web page</label></h2>
      <input id="url" name="url" type="url" placeholder="https://example.com/article" value="{{ url }}" required>
      <button type="submit">Fetch and extract</button>
    </form>
    <form method="post" action="/extract-csv" enctype="multipart/form-data" id="csv-form">
      <h2><label for="file">Or a CSV file with a <code>text</code> column</label></h2>
      <input id="file" name="file" type="file" accept=".csv,text/csv" required>
      <button type="submit">Download with <code>tech_terms</code></button>
    </form>
  </div>
</div>
<p class="note">Limits: {{ limits }}. JSON API: <code>/api/extract</code>, <code>/api/extract-url</code>,
<code>/api/extract-csv</code>; schema at <a href="/openapi.json">/openapi.json</a>.</p>
{% if error %}<div class="error" role="alert" id="error">{{ error }}</div>{% endif %}
{% if result %}
<section id="result">
  {% if source %}<p class="source">From <a href="{{ source }}" rel="noreferrer nofollow">{{ source }}</a></p>{% endif %}
  <h2>{{ result.terms|length }} distinct term{{ "" if result.terms|length == 1 else "s" }},
      {{ result.entities|length }} mention{{ "" if result.entities|length == 1 else "s" }}</h2>
  {% if result.terms %}
  <table id="terms">
    <thead><tr><th>term</th><th>count</th><th>label</th></tr></thead>
    <tbody>
    {% for term in result.terms %}<tr><td class="term">{{ term.text }}</td><td class="count">{{ term.count }}</td><td>{{ term.labels|join(", ") }}</td></tr>
    {% endfor %}
    </tbody>
  </table>
  {% endif %}
  <div id="highlighted">{{ highlighted|safe }}</div>
</section>
{% endif %}
</body>
</html>
"""


def limits_note(settings: ServeSettings) -> str:
    return (
        f"{settings.max_text_chars:,} characters of text, {settings.max_body_bytes:,} bytes per request, "
        f"{settings.max_csv_rows:,} CSV rows"
    )
