//! Which shard owns each zone of a world split over several shards (`owner(world, zone)`).
//!
//! A split world cuts its grid into vertical stripes of whole zone columns, one stripe per
//! shard, the first on the shard that hosts the world. Stripes keep the seam between two
//! shards to one line of zones (a walker crosses shards only there) and keep every shard's
//! zones next to each other, so most of a player's view lives on one shard. The split is a
//! pure function of the grid size and the shard list, so every shard of the world computes
//! the same owner without asking.

use super::grid::ZoneId;

/// Shards one world may be split over at most.
pub const MAX_WORLD_SHARDS: usize = 64;

/// The zone columns of a grid cut into stripes, one per shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stripes {
    grid_size: u32,
    /// The shard of each stripe, west to east.
    shards: Vec<usize>,
}

impl Stripes {
    /// `parts` stripes over a grid of `grid_size` columns, the first on `host` and the next
    /// on the shards after it (wrapping around `nshards`). There are never more stripes than
    /// columns or shards; `None` when that leaves one stripe (the world is not split).
    pub fn new(grid_size: u32, parts: usize, host: usize, nshards: usize) -> Option<Stripes> {
        let columns = usize::try_from(grid_size).unwrap_or(usize::MAX);
        let n = parts.min(nshards).min(columns).min(MAX_WORLD_SHARDS);
        if n < 2 || host >= nshards {
            return None;
        }
        Some(Stripes {
            grid_size,
            shards: (0..n).map(|i| (host + i) % nshards).collect(),
        })
    }

    /// The shard that hosts the world (the first stripe's).
    pub fn host(&self) -> usize {
        self.shards.first().copied().unwrap_or_default()
    }

    /// Every shard of the world, the host first.
    pub fn shards(&self) -> &[usize] {
        &self.shards
    }

    /// The shard owning zone `z`. Column `x` of `grid_size` columns falls in stripe
    /// `x * n / grid_size`, so stripes differ in width by at most one column.
    pub fn owner(&self, z: ZoneId) -> usize {
        let n = self.shards.len() as u64;
        let x = u64::from(z.x.min(self.grid_size.saturating_sub(1)));
        let stripe = (x * n / u64::from(self.grid_size.max(1))) as usize;
        self.shards
            .get(stripe)
            .copied()
            .unwrap_or_else(|| self.host())
    }

    /// The shards across the seam from zone `z`: the owners of the columns on either side of
    /// `z`'s that are not `z`'s owner (none for a zone inside its stripe). Stripes are whole
    /// columns, so these are also the owners of every other-stripe zone touching `z`,
    /// diagonals included.
    pub fn across(&self, z: ZoneId) -> impl Iterator<Item = usize> + '_ {
        let own = self.owner(z);
        let west = z.x.checked_sub(1).map(|x| self.owner(ZoneId::new(x, z.y)));
        let east = (z.x + 1 < self.grid_size).then(|| self.owner(ZoneId::new(z.x + 1, z.y)));
        [west, east]
            .into_iter()
            .flatten()
            .filter(move |s| *s != own)
    }

    /// How many stripes (shards) the world has.
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a split has at least two stripes.
    pub fn is_empty(&self) -> bool {
        self.shards.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_cut_into_contiguous_stripes_starting_on_the_host() {
        let s = Stripes::new(10, 2, 1, 2).expect("split");
        assert_eq!(s.shards(), &[1, 0]);
        assert_eq!(s.host(), 1);
        let owners: Vec<usize> = (0..10).map(|x| s.owner(ZoneId::new(x, 7))).collect();
        assert_eq!(owners, vec![1, 1, 1, 1, 1, 0, 0, 0, 0, 0]);
        let s = Stripes::new(7, 3, 0, 4).expect("split");
        let owners: Vec<usize> = (0..7).map(|x| s.owner(ZoneId::new(x, 0))).collect();
        assert_eq!(owners, vec![0, 0, 0, 1, 1, 2, 2]);
        // A column past the grid (never asked in practice) still has an owner.
        assert_eq!(s.owner(ZoneId::new(99, 0)), 2);
    }

    #[test]
    fn only_zones_at_a_seam_have_shards_across_it() {
        let s = Stripes::new(6, 3, 0, 3).expect("split");
        let across = |x| s.across(ZoneId::new(x, 4)).collect::<Vec<_>>();
        assert_eq!(across(0), Vec::<usize>::new(), "the grid's edge is no seam");
        assert_eq!(across(1), vec![1]);
        assert_eq!(across(2), vec![0]);
        assert_eq!(across(3), vec![2]);
        assert_eq!(across(5), Vec::<usize>::new());
    }

    #[test]
    fn a_world_is_not_split_past_its_columns_or_the_shards() {
        assert_eq!(Stripes::new(10, 1, 0, 8), None);
        assert_eq!(Stripes::new(1, 4, 0, 8), None, "one column");
        assert_eq!(Stripes::new(10, 4, 0, 1), None, "one shard");
        assert_eq!(Stripes::new(10, 4, 0, 2).map(|s| s.len()), Some(2));
        assert_eq!(Stripes::new(3, 8, 0, 8).map(|s| s.len()), Some(3));
        assert_eq!(Stripes::new(10, 2, 5, 2), None, "host out of range");
    }
}
