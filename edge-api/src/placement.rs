//! Where a room's media goes: the rule that picks a region the first time a room is joined.
//!
//! Only available regions are candidates: healthy, not draining, with capacity left (see
//! [`crate::registry`]; without sidecars every configured region is available).
//!
//! 1. The region named at create (`region`), if it is available.
//! 2. Else the available region nearest (great-circle distance) to the joining end user, when
//!    the platform or a trusted header tells where the user is.
//! 3. Else the configured default region, if available.
//! 4. Else the first available region in configuration order.
//! 5. Else none: the join is refused until a region is back.
//!
//! Once chosen, the pin is stored and changes only when the region is gone
//! ([`crate::registry::region_is_gone`]): the next join then chooses again by the same rule.

use crate::config::{EdgeConfig, GeoPoint, Region};

/// Mean Earth radius in kilometres.
const EARTH_RADIUS_KM: f64 = 6371.0;

/// Great-circle distance between two points, in kilometres.
pub fn distance_km(a: GeoPoint, b: GeoPoint) -> f64 {
    let (lat1, lat2) = (a.lat.to_radians(), b.lat.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.lon - a.lon).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Why a region was chosen (logged, and returned to the browser for transparency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The room was created with this region.
    Hint,
    /// Nearest available region to the user.
    Nearest,
    /// The configured default.
    Default,
    /// The first available region (the default was not available).
    Fallback,
}

/// Picks the region for a room's first join; `None` when no region is available.
pub fn choose<'a>(
    config: &'a EdgeConfig,
    hint: Option<&str>,
    user: Option<GeoPoint>,
    is_available: impl Fn(&Region) -> bool,
) -> Option<(&'a Region, Reason)> {
    let available = |r: &&Region| is_available(r);
    if let Some(region) = hint.and_then(|id| config.region(id)).filter(available) {
        return Some((region, Reason::Hint));
    }
    if let Some(user) = user {
        let nearest = config
            .regions
            .iter()
            .filter(available)
            .map(|r| (r, distance_km(user, r.location)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((region, _)) = nearest {
            return Some((region, Reason::Nearest));
        }
    }
    if let Some(region) = config.region(&config.default_region).filter(available) {
        return Some((region, Reason::Default));
    }
    config
        .regions
        .iter()
        .find(available)
        .map(|r| (r, Reason::Fallback))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::fixtures::config;

    #[test]
    fn distance_is_plausible() {
        let fra = GeoPoint {
            lat: 50.1,
            lon: 8.7,
        };
        let nyc = GeoPoint {
            lat: 40.7,
            lon: -74.0,
        };
        let d = distance_km(fra, nyc);
        assert!((6150.0..6250.0).contains(&d), "{d}");
        assert_eq!(distance_km(fra, fra), 0.0);
    }

    fn pick<'a>(
        c: &'a EdgeConfig,
        hint: Option<&str>,
        user: Option<GeoPoint>,
        up: impl Fn(&Region) -> bool,
    ) -> Option<(&'a str, Reason)> {
        choose(c, hint, user, up).map(|(r, reason)| (r.id.as_str(), reason))
    }

    #[test]
    fn hint_then_nearest_then_default_then_any() {
        let c = config();
        let paris = Some(GeoPoint {
            lat: 48.9,
            lon: 2.35,
        });
        assert_eq!(
            pick(&c, Some("ap"), paris, |_| true),
            Some(("ap", Reason::Hint))
        );
        assert_eq!(
            pick(&c, Some("nope"), paris, |_| true),
            Some(("eu", Reason::Nearest))
        );
        // A hinted region that is down is passed over.
        assert_eq!(
            pick(&c, Some("ap"), paris, |r| r.id != "ap"),
            Some(("eu", Reason::Nearest))
        );
        assert_eq!(
            pick(&c, None, paris, |r| r.id != "eu"),
            Some(("us", Reason::Nearest))
        );
        assert_eq!(
            pick(&c, None, None, |_| true),
            Some(("us", Reason::Default))
        );
        assert_eq!(
            pick(&c, None, None, |r| r.id != "us"),
            Some(("eu", Reason::Fallback))
        );
        assert_eq!(pick(&c, None, paris, |_| false), None);
        let tokyo = Some(GeoPoint {
            lat: 35.7,
            lon: 139.7,
        });
        assert_eq!(
            pick(&c, None, tokyo, |_| true),
            Some(("ap", Reason::Nearest))
        );
    }
}
