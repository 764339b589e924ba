//! Where each video goes on the composite canvas: a grid of cameras that re-lays itself out as
//! videos come and go, with a screen share given the large tile when there is one.
//!
//! Pure arithmetic, so the rules are tested without GStreamer; the pipeline applies the tiles to
//! its compositor pads (and each pad keeps its video's aspect ratio inside its tile).

/// The size of the composite picture, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Canvas {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// What a video shows, which decides its place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VideoKind {
    /// A participant's camera.
    Camera,
    /// A shared screen: gets the large tile.
    ScreenShare,
}

/// A rectangle on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tile {
    /// Left edge, pixels from the canvas's left.
    pub x: u32,
    /// Top edge, pixels from the canvas's top.
    pub y: u32,
    /// Width in pixels (at least 2).
    pub width: u32,
    /// Height in pixels (at least 2).
    pub height: u32,
}

/// Pixels between tiles and around the edge.
const GAP: u32 = 4;
/// Share of the canvas width the screen share gets when cameras are also shown.
const SCREEN_SHARE_WIDTH_PERCENT: u32 = 78;

/// One tile per video, in the order given.
///
/// Without a screen share the cameras fill a near-square grid (columns = ⌈√n⌉), row by row,
/// with a short last row centred. With one, the first screen share fills the left part of the
/// canvas and everything else is stacked in a column on the right; later screen shares are
/// treated like cameras.
pub fn layout(canvas: Canvas, videos: &[VideoKind]) -> Vec<Tile> {
    if videos.is_empty() {
        return Vec::new();
    }
    let Some(featured) = videos.iter().position(|v| *v == VideoKind::ScreenShare) else {
        return grid(
            Tile {
                x: 0,
                y: 0,
                width: canvas.width,
                height: canvas.height,
            },
            videos.len(),
        );
    };
    let full = Tile {
        x: 0,
        y: 0,
        width: canvas.width,
        height: canvas.height,
    };
    if videos.len() == 1 {
        return vec![inset(full)];
    }
    let main_width = canvas.width * SCREEN_SHARE_WIDTH_PERCENT / 100;
    let main = Tile {
        width: main_width,
        ..full
    };
    let side = Tile {
        x: main_width,
        y: 0,
        width: canvas.width - main_width,
        height: canvas.height,
    };
    let mut strip = column(side, videos.len() - 1).into_iter();
    videos
        .iter()
        .enumerate()
        .map(|(i, _)| {
            if i == featured {
                inset(main)
            } else {
                strip.next().unwrap_or(inset(side))
            }
        })
        .collect()
}

/// A video that may get a place on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contender {
    /// What it shows.
    pub kind: VideoKind,
    /// When it first arrived (smaller is earlier).
    pub arrival: u64,
    /// Whether its pictures stopped coming (a camera turned off): it gets no place, so the
    /// canvas does not hold a frozen picture.
    pub stalled: bool,
}

/// Which videos get a place on a canvas with room for `places`: screen shares first, then the
/// earliest arrivals, never a stalled one. The answer says, in the order of `videos`, whether
/// each one is shown.
pub fn shown(videos: &[Contender], places: usize) -> Vec<bool> {
    let mut by_priority: Vec<usize> = (0..videos.len()).filter(|&i| !videos[i].stalled).collect();
    by_priority.sort_by_key(|&i| (videos[i].kind != VideoKind::ScreenShare, videos[i].arrival));
    let mut shown = vec![false; videos.len()];
    for &i in by_priority.iter().take(places) {
        shown[i] = true;
    }
    shown
}

/// `n` cells in a near-square grid inside `area`.
fn grid(area: Tile, n: usize) -> Vec<Tile> {
    let n = u32::try_from(n).unwrap_or(u32::MAX);
    let columns = (1..=n).find(|c| c * c >= n).unwrap_or(1);
    let rows = n.div_ceil(columns);
    let cell_width = area.width / columns;
    let cell_height = area.height / rows;
    let mut tiles = Vec::with_capacity(n as usize);
    for index in 0..n {
        let row = index / columns;
        let column = index % columns;
        let in_this_row = if row + 1 == rows {
            n - row * columns
        } else {
            columns
        };
        // Centre a short last row.
        let offset = (columns - in_this_row) * cell_width / 2;
        tiles.push(inset(Tile {
            x: area.x + offset + column * cell_width,
            y: area.y + row * cell_height,
            width: cell_width,
            height: cell_height,
        }));
    }
    tiles
}

/// `n` cells stacked top to bottom inside `area`, each no taller than a 16:9 picture of the
/// column's width, the stack centred vertically.
fn column(area: Tile, n: usize) -> Vec<Tile> {
    let n = u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let cell_height = (area.height / n).min(area.width * 9 / 16 + GAP);
    let top = area.y + (area.height - cell_height * n) / 2;
    (0..n)
        .map(|i| {
            inset(Tile {
                x: area.x,
                y: top + i * cell_height,
                width: area.width,
                height: cell_height,
            })
        })
        .collect()
}

/// The cell minus the gap on each side, never smaller than 2x2 (video formats want even sizes).
fn inset(cell: Tile) -> Tile {
    let shrink = |len: u32| (len.saturating_sub(2 * GAP).max(2)) & !1;
    Tile {
        x: cell.x + GAP.min(cell.width / 2),
        y: cell.y + GAP.min(cell.height / 2),
        width: shrink(cell.width),
        height: shrink(cell.height),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HD: Canvas = Canvas {
        width: 1280,
        height: 720,
    };

    fn overlaps(a: &Tile, b: &Tile) -> bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }

    fn check_invariants(canvas: Canvas, tiles: &[Tile]) {
        for (i, t) in tiles.iter().enumerate() {
            assert!(
                t.x + t.width <= canvas.width,
                "tile {i} {t:?} leaves the canvas"
            );
            assert!(
                t.y + t.height <= canvas.height,
                "tile {i} {t:?} leaves the canvas"
            );
            assert!(t.width >= 2 && t.height >= 2 && t.width % 2 == 0 && t.height % 2 == 0);
            for (j, u) in tiles.iter().enumerate().skip(i + 1) {
                assert!(!overlaps(t, u), "tiles {i} {t:?} and {j} {u:?} overlap");
            }
        }
    }

    #[test]
    fn grid_sizes_follow_the_number_of_cameras() {
        for n in 1..=16 {
            let tiles = layout(HD, &vec![VideoKind::Camera; n]);
            assert_eq!(tiles.len(), n);
            check_invariants(HD, &tiles);
        }
        let one = layout(HD, &[VideoKind::Camera]);
        assert_eq!(one[0].width, 1280 - 2 * GAP);
        // Two side by side, four as 2x2, five as 3+2 with the short row centred.
        let two = layout(HD, &[VideoKind::Camera; 2]);
        assert_eq!(two[0].y, two[1].y);
        assert!(two[1].x > two[0].x);
        let four = layout(HD, &[VideoKind::Camera; 4]);
        assert_eq!(four[0].width, 640 - 2 * GAP);
        assert_eq!(four[2].y, 360 + GAP);
        let five = layout(HD, &[VideoKind::Camera; 5]);
        let cell = 1280 / 3;
        assert_eq!(five[3].x, cell / 2 + GAP, "short last row is centred");
    }

    #[test]
    fn screen_share_gets_the_large_tile() {
        let videos = [
            VideoKind::Camera,
            VideoKind::ScreenShare,
            VideoKind::Camera,
            VideoKind::Camera,
        ];
        let tiles = layout(HD, &videos);
        check_invariants(HD, &tiles);
        let screen = tiles[1];
        for (i, t) in tiles.iter().enumerate() {
            if i != 1 {
                assert!(t.width * t.height * 4 < screen.width * screen.height);
                assert!(
                    t.x >= screen.x + screen.width,
                    "cameras sit right of the share"
                );
            }
        }
        let alone = layout(HD, &[VideoKind::ScreenShare]);
        assert_eq!(alone[0].width, 1280 - 2 * GAP);
    }

    #[test]
    fn a_second_screen_share_is_a_small_tile() {
        let tiles = layout(HD, &[VideoKind::ScreenShare, VideoKind::ScreenShare]);
        check_invariants(HD, &tiles);
        assert!(tiles[0].width > tiles[1].width * 3);
    }

    fn contenders(videos: &[(VideoKind, u64)]) -> Vec<Contender> {
        videos
            .iter()
            .map(|&(kind, arrival)| Contender {
                kind,
                arrival,
                stalled: false,
            })
            .collect()
    }

    #[test]
    fn a_full_canvas_keeps_the_earliest_videos_and_every_screen_share() {
        use VideoKind::{Camera, ScreenShare};
        let videos = contenders(&[(Camera, 4), (Camera, 0), (Camera, 7), (Camera, 2)]);
        assert_eq!(shown(&videos, 2), [false, true, false, true]);
        assert_eq!(shown(&videos, 4), [true; 4]);
        assert_eq!(shown(&videos, 9), [true; 4], "room to spare");
        // A screen share that came last still gets a place, ahead of the cameras.
        let shared = contenders(&[(Camera, 0), (Camera, 1), (ScreenShare, 5)]);
        assert_eq!(shown(&shared, 2), [true, false, true]);
        assert_eq!(shown(&shared, 1), [false, false, true]);
        assert!(shown(&[], 3).is_empty());
    }

    #[test]
    fn a_stalled_camera_has_no_place_and_the_next_takes_it() {
        let mut videos = contenders(&[
            (VideoKind::Camera, 0),
            (VideoKind::Camera, 1),
            (VideoKind::Camera, 2),
        ]);
        assert_eq!(shown(&videos, 2), [true, true, false]);
        videos[0].stalled = true;
        assert_eq!(shown(&videos, 2), [false, true, true]);
        assert_eq!(shown(&videos, 9), [false, true, true], "room to spare");
        // Its pictures come back: it is the earliest again.
        videos[0].stalled = false;
        assert_eq!(shown(&videos, 2), [true, true, false]);
    }

    #[test]
    fn nothing_to_show_is_no_tiles() {
        assert!(layout(HD, &[]).is_empty());
    }

    #[test]
    fn tiny_canvases_still_give_valid_tiles() {
        let tiny = Canvas {
            width: 16,
            height: 16,
        };
        for n in 1..=9 {
            let tiles = layout(tiny, &vec![VideoKind::Camera; n]);
            for t in &tiles {
                assert!(t.width >= 2 && t.height >= 2);
            }
        }
    }
}
