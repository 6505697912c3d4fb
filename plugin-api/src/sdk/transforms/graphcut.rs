//! Minimum s-t cut of a 3-D grid with 6-connected voxels, by Boykov and Kolmogorov's
//! max-flow algorithm ("An Experimental Comparison of Min-Cut/Max-Flow Algorithms for Energy
//! Minimization in Vision", PAMI 2004): two search trees grown from the terminals, augmented
//! along the paths where they meet, orphans re-adopted with the distance/timestamp heuristic.
//! Capacities are integers, so the cut is exact.
//!
//! [`GridCut`] minimises `Σ_v D_v(L_v) + Σ_{(p,q)} w_pq·[L_p ≠ L_q]` over binary labels:
//! [`GridCut::terminal`] sets a voxel's preference, [`GridCut::edge`] a neighbour pair's
//! weight, and [`GridCut::solve`] answers which voxels end on the source side.

use std::collections::VecDeque;

const TERMINAL: u8 = 6;
const ORPHAN: u8 = 7;
const NONE: u8 = 8;
const FREE: u8 = 0;
const SOURCE: u8 = 1;
const SINK: u8 = 2;

/// A 6-connected grid graph with source and sink.
pub struct GridCut {
    dims: [usize; 3],
    /// Per voxel, a bit per direction that has a neighbour inside the grid.
    inside: Vec<u8>,
    /// Residual capacity of the edge from each voxel to its neighbour in each direction
    /// (`-i, +i, -j, +j, -k, +k`).
    cap: Vec<[i32; 6]>,
    /// Residual terminal capacity: > 0 from the source, < 0 to the sink.
    tr: Vec<i64>,
    parent: Vec<u8>,
    tree: Vec<u8>,
    ts: Vec<u32>,
    dist: Vec<u32>,
    time: u32,
    active: VecDeque<u32>,
    in_active: Vec<bool>,
    orphans: VecDeque<u32>,
}

const fn opposite(d: u8) -> u8 {
    d ^ 1
}

impl GridCut {
    /// An empty graph on a grid of `dims` voxels (first axis fastest: `i + n_i·(j + n_j·k)`).
    pub fn new(dims: [usize; 3]) -> Self {
        let n = dims[0] * dims[1] * dims[2];
        let [ni, nj, nk] = dims;
        let mut inside = vec![0u8; n];
        for k in 0..nk {
            for j in 0..nj {
                for i in 0..ni {
                    let bits = [i > 0, i + 1 < ni, j > 0, j + 1 < nj, k > 0, k + 1 < nk];
                    inside[i + ni * (j + nj * k)] = bits
                        .iter()
                        .enumerate()
                        .fold(0, |m, (d, &b)| m | (u8::from(b) << d));
                }
            }
        }
        GridCut {
            dims,
            inside,
            cap: vec![[0; 6]; n],
            tr: vec![0; n],
            parent: vec![NONE; n],
            tree: vec![FREE; n],
            ts: vec![0; n],
            dist: vec![0; n],
            time: 0,
            active: VecDeque::new(),
            in_active: vec![false; n],
            orphans: VecDeque::new(),
        }
    }

    /// The voxel's index.
    pub fn index(&self, i: usize, j: usize, k: usize) -> usize {
        i + self.dims[0] * (j + self.dims[1] * k)
    }

    /// The neighbour of `v` in direction `d`, if inside the grid.
    #[inline]
    fn neighbour(&self, v: usize, d: u8) -> Option<usize> {
        if self.inside[v] >> d & 1 == 0 {
            return None;
        }
        let plane = self.dims[0] * self.dims[1];
        Some(match d {
            0 => v - 1,
            1 => v + 1,
            2 => v - self.dims[0],
            3 => v + self.dims[0],
            4 => v - plane,
            _ => v + plane,
        })
    }

    /// Adds `source_side_cost` for labelling `v` source side and `sink_side_cost` for
    /// labelling it sink side.
    pub fn terminal(&mut self, v: usize, source_side_cost: i64, sink_side_cost: i64) {
        // Only the difference matters: the smaller cost is paid either way.
        self.tr[v] += sink_side_cost - source_side_cost;
    }

    /// Sets the weight paid when `v` and its neighbour in direction `d` (0..6) are cut apart.
    pub fn edge(&mut self, v: usize, d: u8, weight: i32) {
        if let Some(u) = self.neighbour(v, d) {
            self.cap[v][usize::from(d)] = weight;
            self.cap[u][usize::from(opposite(d))] = weight;
        }
    }

    fn activate(&mut self, v: usize) {
        if !self.in_active[v] {
            self.in_active[v] = true;
            self.active.push_back(v as u32);
        }
    }

    /// Runs max-flow; answers, per voxel, whether it is on the source side of the cut.
    pub fn solve(mut self) -> Vec<bool> {
        for v in 0..self.tr.len() {
            if self.tr[v] != 0 {
                self.tree[v] = if self.tr[v] > 0 { SOURCE } else { SINK };
                self.parent[v] = TERMINAL;
                self.dist[v] = 1;
                self.activate(v);
            }
        }
        while let Some(v) = self.active.pop_front() {
            let v = v as usize;
            self.in_active[v] = false;
            if self.tree[v] == FREE {
                continue;
            }
            if let Some((a, d)) = self.grow(v) {
                // v may still grow after this path: keep it active.
                self.activate(v);
                self.time += 1;
                self.augment(a, d);
                self.adopt();
            }
        }
        self.tree.iter().map(|&t| t == SOURCE).collect()
    }

    /// Grows `v`'s tree into free neighbours; answers a source-to-sink edge `(a, d)` (from
    /// `a` in direction `d`) when the trees meet.
    fn grow(&mut self, v: usize) -> Option<(usize, u8)> {
        let mine = self.tree[v];
        for d in 0..6u8 {
            let Some(u) = self.neighbour(v, d) else {
                continue;
            };
            // The residual capacity along the tree's direction: away from the source,
            // towards the sink.
            let residual = if mine == SOURCE {
                self.cap[v][usize::from(d)]
            } else {
                self.cap[u][usize::from(opposite(d))]
            };
            if residual <= 0 {
                continue;
            }
            match self.tree[u] {
                FREE => {
                    self.tree[u] = mine;
                    self.parent[u] = opposite(d);
                    self.ts[u] = self.ts[v];
                    self.dist[u] = self.dist[v] + 1;
                    self.activate(u);
                }
                t if t != mine => {
                    return Some(if mine == SOURCE {
                        (v, d)
                    } else {
                        (u, opposite(d))
                    });
                }
                _ => {}
            }
        }
        None
    }

    /// The bottleneck of the path through edge `(a, d)`, then the flow pushed along it;
    /// nodes whose edge to their parent saturates become orphans.
    fn augment(&mut self, a: usize, d: u8) {
        let b = self.neighbour(a, d).unwrap_or(a);
        let mut flow = i64::from(self.cap[a][usize::from(d)]);
        // Source side: edges parent → x.
        let mut x = a;
        while self.parent[x] != TERMINAL {
            let p = self.parent[x];
            let up = self.neighbour(x, p).unwrap_or(x);
            flow = flow.min(i64::from(self.cap[up][usize::from(opposite(p))]));
            x = up;
        }
        flow = flow.min(self.tr[x]);
        // Sink side: edges x → parent.
        let mut x = b;
        while self.parent[x] != TERMINAL {
            let p = self.parent[x];
            flow = flow.min(i64::from(self.cap[x][usize::from(p)]));
            x = self.neighbour(x, p).unwrap_or(x);
        }
        flow = flow.min(-self.tr[x]);
        let f = flow as i32;

        self.cap[a][usize::from(d)] -= f;
        self.cap[b][usize::from(opposite(d))] += f;
        let mut x = a;
        while self.parent[x] != TERMINAL {
            let p = self.parent[x];
            let up = self.neighbour(x, p).unwrap_or(x);
            self.cap[up][usize::from(opposite(p))] -= f;
            self.cap[x][usize::from(p)] += f;
            if self.cap[up][usize::from(opposite(p))] == 0 {
                self.orphan(x);
            }
            x = up;
        }
        self.tr[x] -= flow;
        if self.tr[x] == 0 {
            self.orphan(x);
        }
        let mut x = b;
        while self.parent[x] != TERMINAL {
            let p = self.parent[x];
            let up = self.neighbour(x, p).unwrap_or(x);
            self.cap[x][usize::from(p)] -= f;
            self.cap[up][usize::from(opposite(p))] += f;
            if self.cap[x][usize::from(p)] == 0 {
                self.orphan(x);
            }
            x = up;
        }
        self.tr[x] += flow;
        if self.tr[x] == 0 {
            self.orphan(x);
        }
    }

    fn orphan(&mut self, v: usize) {
        self.parent[v] = ORPHAN;
        self.orphans.push_back(v as u32);
    }

    /// The distance from `u` to its tree's terminal, or `None` when its chain ends in an
    /// orphan; marks the chain with the current time and distances on the way.
    fn origin_distance(&mut self, u: usize) -> Option<u32> {
        let mut d = 0u32;
        let mut x = u;
        loop {
            if self.ts[x] == self.time {
                d += self.dist[x];
                break;
            }
            d += 1;
            match self.parent[x] {
                TERMINAL => {
                    self.ts[x] = self.time;
                    self.dist[x] = 1;
                    break;
                }
                ORPHAN | NONE => return None,
                p => x = self.neighbour(x, p).unwrap_or(x),
            }
        }
        // Mark the chain from u with its distances.
        let mut x = u;
        let mut left = d;
        while self.ts[x] != self.time {
            self.ts[x] = self.time;
            self.dist[x] = left;
            left = left.saturating_sub(1);
            match self.parent[x] {
                TERMINAL | ORPHAN | NONE => break,
                p => x = self.neighbour(x, p).unwrap_or(x),
            }
        }
        Some(d)
    }

    /// The residual capacity of the tree edge between `o` and its neighbour `u` (direction
    /// `d` from `o`) in `tree`: from `u` to `o` in the source tree, from `o` to `u` in the
    /// sink tree.
    fn tree_residual(&self, o: usize, u: usize, d: u8, tree: u8) -> i32 {
        if tree == SOURCE {
            self.cap[u][usize::from(opposite(d))]
        } else {
            self.cap[o][usize::from(d)]
        }
    }

    /// Gives each orphan a new parent in its tree, or frees it.
    fn adopt(&mut self) {
        while let Some(o) = self.orphans.pop_front() {
            let o = o as usize;
            let mine = self.tree[o];
            let mut best: Option<(u8, u32)> = None;
            for d in 0..6u8 {
                let Some(u) = self.neighbour(o, d) else {
                    continue;
                };
                if self.tree[u] != mine {
                    continue;
                }
                if self.tree_residual(o, u, d, mine) <= 0 {
                    continue;
                }
                if let Some(dist) = self.origin_distance(u) {
                    if best.is_none_or(|(_, b)| dist < b) {
                        best = Some((d, dist));
                    }
                }
            }
            if let Some((d, dist)) = best {
                self.parent[o] = d;
                self.ts[o] = self.time;
                self.dist[o] = dist + 1;
                continue;
            }
            // No parent: o leaves its tree; its neighbours may reach it again later.
            for d in 0..6u8 {
                let Some(u) = self.neighbour(o, d) else {
                    continue;
                };
                if self.tree[u] != mine {
                    continue;
                }
                if self.tree_residual(o, u, d, mine) > 0 {
                    self.activate(u);
                }
                if self.parent[u] == opposite(d) {
                    self.orphan(u);
                }
            }
            self.tree[o] = FREE;
            self.parent[o] = NONE;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn energy(dims: [usize; 3], tr: &[(i64, i64)], w: &[[i32; 6]], side: &[bool]) -> i64 {
        let g = GridCut::new(dims);
        let mut e = 0;
        for v in 0..tr.len() {
            e += if side[v] { tr[v].0 } else { tr[v].1 };
            for d in [1u8, 3, 5] {
                if let Some(u) = g.neighbour(v, d) {
                    if side[v] != side[u] {
                        e += i64::from(w[v][usize::from(d)]);
                    }
                }
            }
        }
        e
    }

    /// Brute force over all labellings of a tiny grid.
    fn brute(dims: [usize; 3], tr: &[(i64, i64)], w: &[[i32; 6]]) -> i64 {
        let n = tr.len();
        (0u32..1 << n)
            .map(|bits| {
                let side: Vec<bool> = (0..n).map(|v| bits >> v & 1 == 1).collect();
                energy(dims, tr, w, &side)
            })
            .min()
            .unwrap_or(0)
    }

    #[test]
    fn the_cut_is_minimal_on_random_small_grids() {
        let mut seed = 12345u64;
        let mut rand = |m: u64| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) % m
        };
        for _ in 0..200 {
            let dims = [
                1 + rand(3) as usize,
                1 + rand(3) as usize,
                1 + rand(2) as usize,
            ];
            let n = dims[0] * dims[1] * dims[2];
            let tr: Vec<(i64, i64)> = (0..n).map(|_| (rand(20) as i64, rand(20) as i64)).collect();
            let w: Vec<[i32; 6]> = (0..n)
                .map(|_| {
                    let mut a = [0; 6];
                    for d in [1, 3, 5] {
                        a[d] = rand(15) as i32;
                    }
                    a
                })
                .collect();
            let mut g = GridCut::new(dims);
            for v in 0..n {
                g.terminal(v, tr[v].0, tr[v].1);
                for d in [1u8, 3, 5] {
                    g.edge(v, d, w[v][usize::from(d)]);
                }
            }
            let side = g.solve();
            assert_eq!(
                energy(dims, &tr, &w, &side),
                brute(dims, &tr, &w),
                "{dims:?} {tr:?} {w:?}"
            );
        }
    }

    #[test]
    fn a_strong_boundary_splits_a_line_where_it_is_cheapest() {
        // 10 voxels in a row: the first wants the source, the last the sink, and the
        // weakest link (between 6 and 7) is where the cut goes.
        let mut g = GridCut::new([10, 1, 1]);
        g.terminal(0, 0, 1000);
        g.terminal(9, 1000, 0);
        for v in 0..9 {
            g.edge(v, 1, if v == 6 { 1 } else { 50 });
        }
        let side = g.solve();
        assert_eq!(
            side,
            [true, true, true, true, true, true, true, false, false, false]
        );
    }
}
