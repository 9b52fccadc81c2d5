"""The JSON API's request and response models (the schema at /openapi.json is built from them)."""

from typing import Any, Dict, List, Optional, Tuple, Union

from pydantic import BaseModel, Field


class TextIn(BaseModel):
    text: str = Field(..., description="The text; any length up to the server's --max-text-chars.")
    html: bool = Field(False, description="Also return the displaCy HTML of the highlighted text.")


class UrlIn(BaseModel):
    url: str = Field(..., description="An http or https URL of a public web page.")
    html: bool = Field(False, description="Also return the displaCy HTML of the highlighted text.")


class TermOut(BaseModel):
    text: str = Field(..., description="The first mention, as written.")
    key: str = Field(..., description="The normalised form terms are grouped by.")
    count: int
    offsets: List[Tuple[int, int]] = Field(..., description="Character offsets (start, end) of each mention.")
    labels: List[str]


class EntityOut(BaseModel):
    start: int
    end: int
    label: str
    text: str


class ExtractOut(BaseModel):
    characters: int = Field(..., description="Length of the text the offsets refer to.")
    terms: List[TermOut] = Field(..., description="Distinct terms in order of first mention.")
    entities: List[EntityOut]
    html: Optional[str] = None


class UrlExtractOut(ExtractOut):
    url: str = Field(..., description="The URL as given.")
    final_url: str = Field(..., description="The URL after redirects.")
    redirects: List[str]
    text: str = Field(..., description="The article text extracted from the page.")


class ErrorOut(BaseModel):
    detail: str


class HealthOut(BaseModel):
    status: str
    model: str
    pipeline: List[str]


ERROR_DESCRIPTIONS = {
    400: "A required column is missing",
    413: "Too large: body, text or rows over the server's limits",
    422: "Bad input",
    502: "The URL could not be fetched",
    503: "The request took longer than the server's --request-timeout",
}


def errors(*codes: int) -> Dict[Union[int, str], Dict[str, Any]]:
    """RETURNS (Dict[int, Dict[str, Any]]): The documented error answers of a route, for `responses=`."""
    return {c: {"model": ErrorOut, "description": ERROR_DESCRIPTIONS[c]} for c in codes}
