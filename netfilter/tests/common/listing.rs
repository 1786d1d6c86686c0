//! Comparing `nft list` output: element order inside `{ ... }` is the
//! kernel's own (upstream's tests accept any), and nft wraps long element
//! lists over several lines.

/// Text with every `{ ... }` element list sorted and whitespace collapsed.
pub fn normalize(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let mut depth = 0;
        let mut close = None;
        for (i, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        close = Some(open + i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(close) = close else {
            out.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let mut items: Vec<String> = rest[open + 1..close]
            .split(',')
            .map(|x| x.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect();
        items.sort();
        out.push('{');
        out.push_str(&items.join(","));
        out.push('}');
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A whole listing as comparable lines: an element list nft wrapped is
/// joined into its first line, and each line is [`normalize`]d. Lines
/// that open or close a block (`table ... {`, `}`) stay as they are.
pub fn comparable_lines(listing: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in listing.lines() {
        if !pending.is_empty() {
            pending.push(' ');
            pending.push_str(line.trim());
        } else if line.contains("= {") {
            pending = line.to_owned();
        } else {
            out.push(normalize(line));
            continue;
        }
        if pending.matches('{').count() <= pending.matches('}').count() {
            out.push(normalize(&pending));
            pending.clear();
        }
    }
    if !pending.is_empty() {
        out.push(normalize(&pending));
    }
    out
}

/// The lines of `want` and `got` that differ, as hunks of (want lines,
/// got lines), from a longest common subsequence (listings are small).
pub fn diff_lines(want: &[String], got: &[String]) -> Vec<(Vec<String>, Vec<String>)> {
    let (n, m) = (want.len(), got.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if want[i] == got[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut hunks = Vec::new();
    let mut hunk: (Vec<String>, Vec<String>) = (Vec::new(), Vec::new());
    while i < n || j < m {
        if i < n && j < m && want[i] == got[j] {
            if !hunk.0.is_empty() || !hunk.1.is_empty() {
                hunks.push(std::mem::take(&mut hunk));
            }
            i += 1;
            j += 1;
        } else if j < m && (i == n || lcs[i][j + 1] >= lcs[i + 1][j]) {
            hunk.1.push(got[j].clone());
            j += 1;
        } else {
            hunk.0.push(want[i].clone());
            i += 1;
        }
    }
    if !hunk.0.is_empty() || !hunk.1.is_empty() {
        hunks.push(hunk);
    }
    hunks
}
