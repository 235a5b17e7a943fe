"""storage_page.py: the storage path's table and compare view, as HTML (in a browser: test_dashboard.py)."""

from tune_ae import storage_page

from test_catalog import storage


def test_rows_link_experiments_and_offer_to_compare_only_those_with_results(tmp_path):
    root = storage(tmp_path)
    rows = storage_page.rows_html(root)
    assert rows.count("<tr ") == 6
    assert '<a class="open" href="/experiments/done">done</a>' in rows
    assert 'href="/experiments/photos"' not in rows and 'href="/experiments/empty-record"' not in rows
    assert 'value="done"' in rows and 'value="photos"' not in rows  # nothing to compare without a done trial
    assert "64: 0.02 (2x)<br>512: 0.005 (2x)" in rows
    assert "<tbody id=\"rows\">" in storage_page.index_page(root)
    assert "no experiments yet" in storage_page.rows_html(tmp_path / "empty")


def test_the_compare_page_shows_the_table_and_both_figures():
    page = storage_page.compare_page(["a", "b<x>|y"], [["h", "a", "b<x>|y", "PCA, k = h"], ["64", "1", "2", "3"]])
    assert "<th>b&lt;x&gt;|y</th>" in page and "<td>64</td><td>1</td><td>2</td><td>3</td>" in page
    assert 'src="/compare/final_vs_h.png?e=a&e=b%3Cx%3E%7Cy"' in page and 'src="/compare/curves.png?e=a&e=b%3Cx%3E%7Cy"' in page
