//! Zone geometry: which zone owns a position, the ring of zones around one, re-homing.

/// Fraction of `zone_size` an entity must clear past its zone's edge before it moves to the
/// neighbouring zone (asobi's fixed rehome margin), so one parked on a border does not
/// bounce between two zones every tick.
pub const REHOME_MARGIN: f64 = 0.15;

/// A zone's coordinates in the grid, `0 ..= grid_size - 1` on each axis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneId {
    /// Column.
    pub x: u32,
    /// Row.
    pub y: u32,
}

impl ZoneId {
    /// The zone at column `x`, row `y`.
    pub fn new(x: u32, y: u32) -> ZoneId {
        ZoneId { x, y }
    }

    /// asobi's key for a zone in `generate_world`'s table: `"x,y"`.
    pub fn key(self) -> String {
        format!("{},{}", self.x, self.y)
    }
}

/// A world's grid: `size × size` zones of `zone_size × zone_size` units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Grid {
    size: u32,
    zone_size: f64,
}

impl Grid {
    /// A grid of `size × size` zones (at least 1) of side `zone_size` (positive; anything else
    /// is taken as 1).
    pub fn new(size: u32, zone_size: f64) -> Grid {
        let zone_size = if zone_size.is_finite() && zone_size > 0.0 {
            zone_size
        } else {
            1.0
        };
        Grid {
            size: size.max(1),
            zone_size,
        }
    }

    /// Zones per axis.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Units per zone side.
    pub fn zone_size(&self) -> f64 {
        self.zone_size
    }

    /// Whether `z` is inside the grid.
    pub fn contains(&self, z: ZoneId) -> bool {
        z.x < self.size && z.y < self.size
    }

    fn axis(&self, v: f64) -> u32 {
        if !v.is_finite() || v <= 0.0 {
            // NaN and −∞ land in the first zone, as a position left of the world does.
            return if v == f64::INFINITY { self.size - 1 } else { 0 };
        }
        let cell = (v / self.zone_size).floor();
        if cell >= f64::from(self.size - 1) {
            self.size - 1
        } else {
            // 0 <= cell < size - 1, so the conversion is exact.
            cell as u32
        }
    }

    /// The zone owning position `(x, y)`; a position outside the world is clamped into the
    /// edge zone (asobi's `pos_to_zone`).
    pub fn zone_of(&self, x: f64, y: f64) -> ZoneId {
        ZoneId {
            x: self.axis(x),
            y: self.axis(y),
        }
    }

    /// The zones within `radius` zones of `center` on both axes (a square ring, clipped to
    /// the grid), in row-major order.
    pub fn ring(&self, center: ZoneId, radius: u32) -> Vec<ZoneId> {
        let lo = |c: u32| c.saturating_sub(radius);
        let hi = |c: u32| c.saturating_add(radius).min(self.size - 1);
        let mut out = Vec::new();
        for y in lo(center.y)..=hi(center.y) {
            for x in lo(center.x)..=hi(center.x) {
                out.push(ZoneId { x, y });
            }
        }
        out
    }

    /// Whether `z` is within `radius` zones of `center` on both axes.
    pub fn in_ring(center: ZoneId, radius: u32, z: ZoneId) -> bool {
        center.x.abs_diff(z.x) <= radius && center.y.abs_diff(z.y) <= radius
    }

    /// Where an entity owned by `home` and now at `(x, y)` should live: `Some(zone)` once it
    /// is more than `margin × zone_size` past `home`'s edge on either axis (and the clamped
    /// zone at its position differs), `None` while it stays.
    pub fn rehome(&self, home: ZoneId, x: f64, y: f64, margin: f64) -> Option<ZoneId> {
        let target = self.zone_of(x, y);
        if target == home {
            return None;
        }
        let slack = margin.max(0.0) * self.zone_size;
        let outside = |v: f64, cell: u32| {
            let lo = f64::from(cell) * self.zone_size;
            let hi = lo + self.zone_size;
            v < lo - slack || v >= hi + slack || v.is_nan()
        };
        (outside(x, home.x) || outside(y, home.y)).then_some(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_map_to_zones_and_clamp_at_the_edges() {
        let g = Grid::new(10, 200.0);
        assert_eq!(g.zone_of(0.0, 0.0), ZoneId::new(0, 0));
        assert_eq!(g.zone_of(199.9, 200.0), ZoneId::new(0, 1));
        assert_eq!(g.zone_of(1999.0, 451.0), ZoneId::new(9, 2));
        assert_eq!(g.zone_of(5000.0, -3.0), ZoneId::new(9, 0));
        assert_eq!(g.zone_of(f64::NAN, f64::INFINITY), ZoneId::new(0, 9));
        assert_eq!(Grid::new(0, -1.0).zone_of(7.0, 7.0), ZoneId::new(0, 0));
    }

    #[test]
    fn rings_are_clipped_to_the_grid() {
        let g = Grid::new(10, 200.0);
        assert_eq!(g.ring(ZoneId::new(1, 0), 1).len(), 6);
        assert_eq!(g.ring(ZoneId::new(5, 5), 1).len(), 9);
        assert_eq!(g.ring(ZoneId::new(5, 5), 0), vec![ZoneId::new(5, 5)]);
        assert_eq!(g.ring(ZoneId::new(0, 0), 20).len(), 100);
        assert!(g.ring(ZoneId::new(9, 9), 2).iter().all(|z| g.contains(*z)));
    }

    #[test]
    fn rehoming_waits_for_the_margin() {
        let g = Grid::new(4, 100.0);
        let home = ZoneId::new(1, 1);
        // Inside, or past the edge by less than 15 units: stays.
        assert_eq!(g.rehome(home, 150.0, 150.0, REHOME_MARGIN), None);
        assert_eq!(g.rehome(home, 210.0, 150.0, REHOME_MARGIN), None);
        assert_eq!(g.rehome(home, 150.0, 86.0, REHOME_MARGIN), None);
        // Clear of the margin: moves to the zone at its position.
        assert_eq!(
            g.rehome(home, 216.0, 150.0, REHOME_MARGIN),
            Some(ZoneId::new(2, 1))
        );
        assert_eq!(
            g.rehome(home, 50.0, 20.0, REHOME_MARGIN),
            Some(ZoneId::new(0, 0))
        );
        // Past the world's edge there is nowhere to go.
        let edge = ZoneId::new(3, 3);
        assert_eq!(g.rehome(edge, 900.0, 900.0, REHOME_MARGIN), None);
    }
}
