//! Resuming at start: each checkpointed file found again by identity and fingerprint at the path or
//! among its rotated siblings, a file truncated while stopped found by its copy, a refilled one read
//! from 0, generations rotated away while stopped searched for.
use super::*;

impl Follower {
    /// Follows `path` resuming from `saved` (oldest first; the last one is the file the path
    /// named). A saved file is found again by identity and fingerprint at the path or among its
    /// rotated siblings (`access.log.0`, `access.log.1`, …) and read from its offset; saved files
    /// found nowhere are dropped. When the path names no saved file it is read from 0.
    pub fn resume(
        path: impl Into<PathBuf>,
        opts: FollowOptions,
        saved: &[FilePosition],
    ) -> Follower {
        let mut f = Follower::empty(path.into(), opts);
        let now = Instant::now();
        let mut candidates = vec![f.path.clone()];
        candidates.extend(rotated_siblings(&f.path));
        let mut found: Vec<(PathBuf, OpenFile)> = Vec::new();
        // Fingerprints of content that is gone from where it was (truncated while stopped).
        let mut lost_fps: Vec<(u64, String)> = Vec::new();
        // Saved files found again with other content (truncated and refilled while stopped).
        let mut refilled: Vec<FileId> = Vec::new();
        for pos in saved.iter().filter(|p| p.retired) {
            // Remembered while the file still exists beside the log.
            let exists = candidates
                .iter()
                .any(|c| std::fs::metadata(c).is_ok_and(|m| is_saved_file(&m, pos)));
            if exists {
                f.retired.push_back(pos.clone());
            }
        }
        let saved: Vec<&FilePosition> = saved.iter().filter(|p| !p.retired).collect();
        for &pos in &saved {
            let hit = candidates.iter().find_map(|c| match_position(c, pos, now));
            match hit {
                Some((p, file)) => {
                    if !found.iter().any(|(_, o)| o.id == file.id) {
                        found.push((p, file));
                    }
                }
                None => {
                    let mut past = pos.past.clone();
                    if strong_saved(pos) {
                        past.push((pos.fp_len, pos.fp.clone()));
                    }
                    lost_fps.extend(past.iter().cloned());
                    // Truncated (copytruncate) while stopped: drain the copy from the offset.
                    if let Some(copy) = find_copy_by_hash(&candidates, pos, now) {
                        tracing::info!(path = %f.path.display(), "log truncated while stopped; reading the rest from its copy");
                        if !found.iter().any(|(_, o)| o.id == copy.id) {
                            found.push((PathBuf::new(), copy));
                        }
                    }
                    // The same file with other content (refilled after a truncation): read it
                    // from 0. A file that merely reused the inode number (another creation time)
                    // is not it: taken for it, the path would count as found and generations
                    // rotated away while stopped would not be searched for.
                    let same_inode = candidates.iter().find_map(|c| {
                        let m = std::fs::metadata(c).ok()?;
                        is_saved_file(&m, pos).then_some(c)
                    });
                    match same_inode.and_then(|c| OpenFile::open(c, 0, now).ok()) {
                        Some(mut file) => {
                            file.past_fps = past;
                            refilled.push(file.id);
                            if !found.iter().any(|(_, o)| o.id == file.id) {
                                found.push((PathBuf::new(), file));
                            }
                        }
                        None => tracing::info!(
                            path = %f.path.display(),
                            ino = pos.ino,
                            "checkpointed file no longer found; its entry expires"
                        ),
                    }
                }
            }
        }
        let path_meta = std::fs::metadata(&f.path).ok();
        let path_id = path_meta.as_ref().map(FileId::of);
        for (_, file) in found {
            if Some(file.id) == path_id {
                f.current = Some(file);
            } else {
                f.draining.push_back(file);
            }
        }
        let newest = saved.iter().filter_map(|p| p.born).max().map(from_pair);
        if let Some(cur) = f.current.as_ref().filter(|c| refilled.contains(&c.id)) {
            // Truncated while stopped, maybe more than once: copies of the later cycles (content
            // written between two truncations) hold lines found nowhere else. Copies of content
            // already taken are told apart by their first bytes.
            let prefix = cur.fp.clone();
            f.find_skipped_generations(newest, path_id, &lost_fps, &prefix, now);
        }
        if f.current.is_none() {
            // Rotated while stopped: generations created after the newest saved file, other than
            // the one the path names now, are read too (from 0).
            f.find_skipped_generations(newest, path_id, &lost_fps, &[], now);
            match OpenFile::open(&f.path, 0, now) {
                Ok(mut file) => {
                    file.past_fps = lost_fps;
                    f.current = Some(file);
                    f.state = FollowState::Following;
                }
                Err(e) => f.note_open_error(e),
            }
        } else {
            f.state = FollowState::Following;
        }
        f
    }
}

/// True if `meta` is the file `pos` was saved for: same device and inode and, where both are
/// known, the same creation time (freed inode numbers are reused at once by ext4 and others).
fn is_saved_file(meta: &Metadata, pos: &FilePosition) -> bool {
    meta.dev() == pos.dev
        && meta.ino() == pos.ino
        && match (pos.born, meta.created().ok().and_then(to_pair)) {
            (Some(saved), Some(now)) => saved == now,
            _ => true,
        }
}

/// Opens `candidate` at `pos.offset` if it is the file `pos` describes (identity and fingerprint).
fn match_position(
    candidate: &Path,
    pos: &FilePosition,
    now: Instant,
) -> Option<(PathBuf, OpenFile)> {
    let meta = std::fs::metadata(candidate).ok()?;
    if !is_saved_file(&meta, pos) {
        return None;
    }
    let mut file = OpenFile::open(candidate, 0, now).ok()?;
    let len = meta.len();
    let prefix = file.read_prefix(pos.fp_len).ok()?;
    if prefix.len() as u64 != pos.fp_len || fingerprint_hex(&prefix) != pos.fp {
        // Same inode number, different content: a new file that reused the inode.
        return None;
    }
    // A stored offset past the end means the file was truncated meanwhile: read it from 0.
    let offset = if pos.offset > len { 0 } else { pos.offset };
    file.read_pos = offset;
    file.committed = offset;
    file.past_fps = pos.past.clone();
    Some((candidate.to_owned(), file))
}

/// After a truncation while stopped: a sibling whose first `fp_len` bytes hash to the saved
/// fingerprint and which reaches the saved offset, opened there.
fn find_copy_by_hash(candidates: &[PathBuf], pos: &FilePosition, now: Instant) -> Option<OpenFile> {
    if !strong_saved(pos) {
        return None;
    }
    for c in candidates {
        let Ok(meta) = std::fs::metadata(c) else {
            continue;
        };
        if meta.len() < pos.offset || meta.len() < pos.fp_len {
            continue;
        }
        let Ok(mut file) = OpenFile::open(c, 0, now) else {
            continue;
        };
        let Ok(prefix) = file.read_prefix(pos.fp_len) else {
            continue;
        };
        if fingerprint_hex(&prefix) == pos.fp {
            file.read_pos = pos.offset;
            file.committed = pos.offset;
            return Some(file);
        }
    }
    None
}
