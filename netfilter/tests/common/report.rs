//! `netfilter/CONFORMANCE.md`: each conformance test owns one marked
//! section of it. A test regenerates its section and fails when the
//! committed text differs; `LINX_BLESS=1` rewrites the section instead.
//! One command regenerates the whole report:
//! `LINX_BLESS=1 cargo test -p linx-netfilter --test compile_conformance --test print_conformance`
//! (cargo runs test binaries one after another, so sections never race).

use std::path::PathBuf;

fn report_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("CONFORMANCE.md")
}

/// Per-family figures as a Markdown table.
pub fn family_table(rows: &[(String, usize, usize)], what: &str) -> String {
    let mut s = format!("| family | rows | {what} | share |\n| --- | ---: | ---: | ---: |\n");
    let (mut all, mut ok) = (0, 0);
    for (fam, n, good) in rows {
        s.push_str(&format!(
            "| {fam} | {n} | {good} | {:.1}% |\n",
            100.0 * *good as f64 / (*n).max(1) as f64
        ));
        all += n;
        ok += good;
    }
    s.push_str(&format!(
        "| **all** | {all} | {ok} | {:.1}% |\n",
        100.0 * ok as f64 / all.max(1) as f64
    ));
    s
}

/// Checks (or, with `LINX_BLESS=1`, rewrites) the section `name`.
pub fn check_section(name: &str, body: &str) {
    let path = report_path();
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let (begin, end) = (
        format!("<!-- {name}:begin -->\n"),
        format!("<!-- {name}:end -->"),
    );
    let current = match (text.find(&begin), text.find(&end)) {
        (Some(b), Some(e)) if b < e => Some(&text[b + begin.len()..e]),
        _ => None,
    };
    if current == Some(body) {
        return;
    }
    if std::env::var("LINX_BLESS").as_deref() == Ok("1") {
        let new = match (text.find(&begin), text.find(&end)) {
            (Some(b), Some(e)) if b < e => format!("{}{begin}{body}{}", &text[..b], &text[e..]),
            _ => format!("{text}\n{begin}{body}{end}\n"),
        };
        std::fs::write(&path, new).expect("write CONFORMANCE.md");
        return;
    }
    panic!(
        "CONFORMANCE.md section `{name}` is stale; regenerate with\n  LINX_BLESS=1 cargo test -p linx-netfilter --test compile_conformance --test print_conformance\n--- generated ---\n{body}--- committed ---\n{}",
        current.unwrap_or("(missing)")
    );
}
