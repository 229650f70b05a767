//! The zones one player sees: the ring of `view_radius` around the zone their entity is in.

use super::grid::{Grid, ZoneId};

/// Which zones a move brought into view and which it took out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterestChange {
    /// Newly visible: each gets a keyframe.
    pub entered: Vec<ZoneId>,
    /// No longer visible: each gets its leave frame.
    pub left: Vec<ZoneId>,
}

/// One player's interest set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interest {
    radius: u32,
    center: Option<ZoneId>,
}

impl Interest {
    /// Nothing in view yet, with `radius` zones of view in each direction.
    pub fn new(radius: u32) -> Interest {
        Interest {
            radius,
            center: None,
        }
    }

    /// The zone the player is in, once placed.
    pub fn center(&self) -> Option<ZoneId> {
        self.center
    }

    /// Whether the player sees `z`.
    pub fn sees(&self, z: ZoneId) -> bool {
        self.center
            .is_some_and(|c| Grid::in_ring(c, self.radius, z))
    }

    /// Every zone the player sees.
    pub fn zones(&self, grid: &Grid) -> Vec<ZoneId> {
        self.center
            .map(|c| grid.ring(c, self.radius))
            .unwrap_or_default()
    }

    /// The player is now in `center` (or nowhere, with `None`): the zones that came into view
    /// and those that left it, each in row-major order.
    pub fn move_to(&mut self, grid: &Grid, center: Option<ZoneId>) -> InterestChange {
        if center == self.center {
            return InterestChange::default();
        }
        let before = self.zones(grid);
        self.center = center;
        let after = self.zones(grid);
        InterestChange {
            entered: after
                .iter()
                .filter(|z| !before.contains(z))
                .copied()
                .collect(),
            left: before
                .iter()
                .filter(|z| !after.contains(z))
                .copied()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_east_swaps_one_column() {
        let g = Grid::new(10, 100.0);
        let mut i = Interest::new(1);
        let first = i.move_to(&g, Some(ZoneId::new(4, 4)));
        assert_eq!(first.entered.len(), 9);
        assert!(first.left.is_empty());
        let step = i.move_to(&g, Some(ZoneId::new(5, 4)));
        assert_eq!(
            step.entered,
            vec![ZoneId::new(6, 3), ZoneId::new(6, 4), ZoneId::new(6, 5)]
        );
        assert_eq!(
            step.left,
            vec![ZoneId::new(3, 3), ZoneId::new(3, 4), ZoneId::new(3, 5)]
        );
        assert!(i.sees(ZoneId::new(6, 5)) && !i.sees(ZoneId::new(3, 4)));
        let gone = i.move_to(&g, None);
        assert_eq!(gone.left.len(), 9);
        assert!(i.move_to(&g, None).left.is_empty());
    }
}
