// Per-chunk rollups of metric series (table track_rollups; docs/track.md, "Storage design").
//
// For every level L of kRollupLevels and every chunk of steps [c·L, (c+1)·L) that holds points,
// one row keeps the chunk's first and last step, the value and timestamp at the last step, the
// minimum and maximum finite value and the number of points. They are maintained at ingest, in
// the batch's transaction, and let a history query of a long range assemble exactly the buckets
// Downsample would compute (ChooseBucketGrid aligns them to whole chunks) from fewer than
// 8 × max_points rows instead of every point. Stateless functions over the database.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "atrium/core/status.h"
#include "atrium/store/database.h"
#include "atrium/track/downsample.h"

namespace atrium::track {

// Updates the rollups of one series after `batch` (sorted by step, unique steps) was written to
// track_points in `tx`. `appends`: every step of the batch follows every step stored before
// (the common case), so its chunks are merged in one statement. Otherwise each chunk is merged
// only where that holds for it, and the others — where the batch rewrote or filled in earlier
// steps — are recomputed from the points (finest level) or from the level below.
Status UpdateRollups(store::Transaction& tx, int64_t run_id, int64_t key_id,
                     std::span<const SeriesPoint> batch, bool appends);

struct RollupHistory {
  std::vector<Bucket> buckets;
  int64_t total = 0;  // points in [first, last]
};

// The buckets of `grid` (grid.level != 0) over the series' points in [first, last], where
// `first` and `last` are stored steps. Partial chunks at the ends are read from the points.
Result<RollupHistory> ReadRollupHistory(store::Executor& db, int64_t run_id, int64_t key_id,
                                        int64_t first, int64_t last, const BucketGrid& grid);

}  // namespace atrium::track
