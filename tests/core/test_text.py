from pipeline.core.text import clean_text, compose_text


def test_clean_text_unescapes_and_strips_tags():
    assert clean_text("<b>Fast</b>&nbsp;&amp; loud<br/>") == "Fast & loud"
    assert clean_text("Rock &amp;amp; roll") == "Rock & roll"
    assert clean_text("  Ünïcödé\n\t gitarre  ") == "Ünïcödé gitarre"


def test_compose_text_skips_empty_fields_in_order():
    fields = {"title": "Capo", "brand": "", "description": "Steel."}
    assert compose_text(fields, ("description", "brand", "title"), " | ") == "Steel. | Capo"
