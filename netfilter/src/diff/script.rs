//! The shortest edit script between two sequences (a longest common
//! subsequence), by common ends then Myers.

use super::ends::common_ends;

/// Pairs (i, j) of equal items in a longest common subsequence of two
/// sequences, in order: common prefix and suffix first (linear), then
/// Myers' O((N+M)·D) on the rest. Past `MAX_EDITS` edits the middle is
/// treated as replaced whole, which is still a correct patch.
pub(super) fn lcs(n: usize, m: usize, eq: impl Fn(usize, usize) -> bool) -> Vec<(usize, usize)> {
    const MAX_EDITS: usize = 2048;
    let (pre, suf) = common_ends(n, m, &eq);
    let mut out: Vec<(usize, usize)> = (0..pre).map(|i| (i, i)).collect();
    let (a0, b0) = (pre, pre);
    let (an, bn) = (n - pre - suf, m - pre - suf);
    if an > 0 && bn > 0 {
        if let Some(mid) = myers(an, bn, MAX_EDITS, |x, y| eq(a0 + x, b0 + y)) {
            out.extend(mid.into_iter().map(|(x, y)| (a0 + x, b0 + y)));
        }
    }
    out.extend((0..suf).map(|k| (n - suf + k, m - suf + k)));
    out
}

/// Myers' greedy shortest edit script; returns matched pairs, or `None`
/// when more than `max_d` edits are needed.
fn myers(
    n: usize,
    m: usize,
    max_d: usize,
    eq: impl Fn(usize, usize) -> bool,
) -> Option<Vec<(usize, usize)>> {
    let (n_i, m_i) = (n as isize, m as isize);
    // trace[d][k + d] = furthest x on diagonal k after d edits.
    let mut trace: Vec<Vec<isize>> = Vec::new();
    let max_d = max_d.min(n + m);
    for d in 0..=max_d as isize {
        let mut v = vec![0isize; (2 * d + 1) as usize];
        let mut done = None;
        for k in (-d..=d).step_by(2) {
            let prev = |kk: isize| trace[(d - 1) as usize][(kk + d - 1) as usize];
            let mut x = if d == 0 {
                0
            } else if k == -d || (k != d && prev(k - 1) < prev(k + 1)) {
                prev(k + 1)
            } else {
                prev(k - 1) + 1
            };
            let mut y = x - k;
            while x < n_i && y < m_i && eq(x as usize, y as usize) {
                x += 1;
                y += 1;
            }
            v[(k + d) as usize] = x;
            if x >= n_i && y >= m_i {
                done = Some(k);
                break;
            }
        }
        trace.push(v);
        if let Some(mut k) = done {
            // Walk back, collecting the diagonal (matching) moves.
            let mut pairs = Vec::new();
            let mut x = n_i;
            let mut y = m_i;
            let mut d = d;
            while d > 0 {
                let prev = |kk: isize| trace[(d - 1) as usize][(kk + d - 1) as usize];
                let pk = if k == -d || (k != d && prev(k - 1) < prev(k + 1)) {
                    k + 1
                } else {
                    k - 1
                };
                let px = prev(pk);
                let py = px - pk;
                let (sx, sy) = if pk == k + 1 {
                    (px, py + 1)
                } else {
                    (px + 1, py)
                };
                while x > sx && y > sy {
                    x -= 1;
                    y -= 1;
                    pairs.push((x as usize, y as usize));
                }
                x = px;
                y = py;
                k = pk;
                d -= 1;
            }
            while x > 0 && y > 0 {
                x -= 1;
                y -= 1;
                pairs.push((x as usize, y as usize));
            }
            pairs.reverse();
            return Some(pairs);
        }
    }
    None
}
