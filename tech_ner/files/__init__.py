"""The files a user hands in and the files we write: user-facing errors (`problems`), text decoding and the
CSV rule (`textfile`), atomic writes (`atomic`)."""
