//! Where a room's media goes: the rule that picks a region the first time a room is joined.
//!
//! 1. The region named at create (`region`), if it is configured.
//! 2. Else the available region nearest (great-circle distance) to the joining end user, when
//!    the platform or a trusted header tells where the user is.
//! 3. Else the configured default region.
//!
//! "Available" is decided by the caller; until regions report health (media-sidecar), every
//! configured region is available. Once chosen, the pin is stored and never changes.

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
}

/// Picks the region for a room's first join.
pub fn choose<'a>(
    config: &'a EdgeConfig,
    hint: Option<&str>,
    user: Option<GeoPoint>,
    is_available: impl Fn(&Region) -> bool,
) -> (&'a Region, Reason) {
    if let Some(region) = hint.and_then(|id| config.region(id)) {
        return (region, Reason::Hint);
    }
    if let Some(user) = user {
        let nearest = config
            .regions
            .iter()
            .filter(|r| is_available(r))
            .map(|r| (r, distance_km(user, r.location)))
            .min_by(|a, b| a.1.total_cmp(&b.1));
        if let Some((region, _)) = nearest {
            return (region, Reason::Nearest);
        }
    }
    let default = config
        .region(&config.default_region)
        .unwrap_or(&config.regions[0]);
    (default, Reason::Default)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::GeoHeaders;

    fn region(id: &str, lat: f64, lon: f64) -> Region {
        Region {
            id: id.into(),
            name: id.into(),
            location: GeoPoint { lat, lon },
            livekit_url: "ws://x".into(),
            api_key: "k".into(),
            api_secret: "s".into(),
        }
    }

    fn config() -> EdgeConfig {
        EdgeConfig {
            api_key: "k".into(),
            api_secret: "s".into(),
            token_validity_secs: 600,
            max_participants_cap: 0,
            max_room_duration_minutes: 0,
            regions: vec![
                region("eu", 50.1, 8.7),
                region("us", 39.0, -77.5),
                region("ap", 1.35, 103.8),
            ],
            default_region: "us".into(),
            geo_headers: GeoHeaders {
                latitude: "a".into(),
                longitude: "b".into(),
            },
        }
    }

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

    #[test]
    fn hint_then_nearest_then_default() {
        let c = config();
        let paris = Some(GeoPoint {
            lat: 48.9,
            lon: 2.35,
        });
        assert_eq!(choose(&c, Some("ap"), paris, |_| true).0.id, "ap");
        assert_eq!(choose(&c, Some("ap"), paris, |_| true).1, Reason::Hint);
        assert_eq!(choose(&c, Some("nope"), paris, |_| true).0.id, "eu");
        assert_eq!(choose(&c, None, paris, |_| true).1, Reason::Nearest);
        assert_eq!(choose(&c, None, paris, |r| r.id != "eu").0.id, "us");
        assert_eq!(choose(&c, None, None, |_| true).0.id, "us");
        assert_eq!(choose(&c, None, paris, |_| false).1, Reason::Default);
        let tokyo = Some(GeoPoint {
            lat: 35.7,
            lon: 139.7,
        });
        assert_eq!(choose(&c, None, tokyo, |_| true).0.id, "ap");
    }
}
