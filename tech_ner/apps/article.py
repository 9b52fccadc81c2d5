"""The text of a fetched page: the article of an HTML page (trafilatura), or plain text as it is."""

from .fetch import HTML_TYPES, TEXT_TYPES, FetchError, Page


def _decode(page: Page) -> str:
    for encoding in (page.charset, "utf-8"):
        if encoding:
            try:
                return page.body.decode(encoding)
            except (LookupError, UnicodeDecodeError):
                continue
    return page.body.decode("cp1252", errors="replace")


def page_text(page: Page) -> str:
    """The main text of a fetched page: the article of an HTML page (trafilatura), or plain text as is.

    page (Page): The page.
    RETURNS (str): The text; "" if the page has none.
    Raises FetchError if the page is neither HTML nor plain text.
    """
    if page.content_type in TEXT_TYPES:
        return _decode(page)
    if page.content_type not in HTML_TYPES and page.content_type:
        raise FetchError(f"{page.url} is not a web page (Content-Type {page.content_type})")
    import trafilatura

    # bytes without a declared charset: trafilatura detects the encoding itself
    html = _decode(page) if page.charset else page.body
    text = trafilatura.extract(html, url=page.url, include_comments=False, include_tables=True)
    if not text:  # short pages fall below trafilatura's precision thresholds
        text = trafilatura.extract(html, url=page.url, include_comments=False, include_tables=True, favor_recall=True)
    return text or ""
