// Rollups of metric series: maintenance at ingest and downsampled reads (rollup.h).
#include "rollup.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>

namespace atrium::track {
namespace {

constexpr size_t kLevels = std::size(kRollupLevels);
constexpr size_t kRowsPerStatement = 400;  // 11 parameters each
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr const char* kChunkColumns =
    "chunk, first_step, last_step, last_value, last_ts, min_value, max_value, count";

struct Chunk {
  int64_t chunk = 0;
  int64_t first_step = 0;
  int64_t last_step = 0;
  double last_value = kNan;
  int64_t last_ts = 0;
  double min = kNan;  // finite values only; NaN when the chunk has none
  double max = kNan;
  int64_t count = 0;
};

// Adds a point after every point already in `c`.
void Add(Chunk& c, const SeriesPoint& p) {
  if (c.count == 0) c.first_step = p.step;
  c.last_step = p.step;
  c.last_value = p.value;
  c.last_ts = p.ts_ms;
  ++c.count;
  if (std::isfinite(p.value)) {
    if (!(c.min <= p.value)) c.min = p.value;  // a NaN start compares false
    if (!(c.max >= p.value)) c.max = p.value;
  }
}

// Merges `later`, whose steps all follow those of `c`, into `c`.
void Merge(Chunk& c, const Chunk& later) {
  if (c.count == 0) {
    int64_t id = c.chunk;
    c = later;
    c.chunk = id;
    return;
  }
  c.last_step = later.last_step;
  c.last_value = later.last_value;
  c.last_ts = later.last_ts;
  c.count += later.count;
  if (!std::isnan(later.min) && !(c.min <= later.min)) c.min = later.min;
  if (!std::isnan(later.max) && !(c.max >= later.max)) c.max = later.max;
}

store::Value DoubleOrNull(double d) { return std::isnan(d) ? store::Value() : store::Value(d); }
double DoubleOf(const store::Row& r, size_t i) { return r.IsNull(i) ? kNan : r.Double(i); }

// A row of kChunkColumns.
Chunk ChunkOf(const store::Row& r) {
  return Chunk{r.Int(0), r.Int(1),       r.Int(2),       DoubleOf(r, 3),
               r.Int(4), DoubleOf(r, 5), DoubleOf(r, 6), r.Int(7)};
}

// The chunks of `level` that `points` (sorted by step) fall in, in order.
std::vector<Chunk> ChunksOf(std::span<const SeriesPoint> points, int64_t level) {
  std::vector<Chunk> out;
  for (const auto& p : points) {
    int64_t id = p.step / level;
    if (out.empty() || out.back().chunk != id) out.push_back(Chunk{.chunk = id});
    Add(out.back(), p);
  }
  return out;
}

// The last step of chunk `id` of `level`, without overflowing near INT64_MAX.
int64_t ChunkEnd(int64_t id, int64_t level) {
  int64_t start = id * level;
  return start > std::numeric_limits<int64_t>::max() - (level - 1)
             ? std::numeric_limits<int64_t>::max()
             : start + level - 1;
}

enum class Upsert {
  kMerge,         // merge into existing rows (the chunk's steps follow the stored ones)
  kMergeChecked,  // the same, only where that holds; RETURNs the (width, chunk) merged
  kReplace,       // replace existing rows
};

// A multi-row upsert of `n` chunks.
std::string UpsertSql(size_t n, Upsert mode) {
  std::string sql =
      "INSERT INTO track_rollups(run_id, key_id, width, chunk, first_step, last_step, "
      "last_value, last_ts, min_value, max_value, count) VALUES ";
  for (size_t i = 0; i < n; ++i)
    sql += i == 0 ? "(?,?,?,?,?,?,?,?,?,?,?)" : ",(?,?,?,?,?,?,?,?,?,?,?)";
  sql += " ON CONFLICT (run_id, key_id, width, chunk) DO UPDATE SET ";
  if (mode != Upsert::kReplace) {
    sql +=
        "last_step = excluded.last_step, last_value = excluded.last_value, "
        "last_ts = excluded.last_ts, "
        "min_value = CASE WHEN track_rollups.min_value IS NULL OR excluded.min_value < "
        "track_rollups.min_value THEN excluded.min_value ELSE track_rollups.min_value END, "
        "max_value = CASE WHEN track_rollups.max_value IS NULL OR excluded.max_value > "
        "track_rollups.max_value THEN excluded.max_value ELSE track_rollups.max_value END, "
        "count = track_rollups.count + excluded.count";
    if (mode == Upsert::kMergeChecked) {
      sql += " WHERE excluded.first_step > track_rollups.last_step RETURNING width, chunk";
    }
  } else {
    sql +=
        "first_step = excluded.first_step, last_step = excluded.last_step, "
        "last_value = excluded.last_value, last_ts = excluded.last_ts, "
        "min_value = excluded.min_value, max_value = excluded.max_value, count = excluded.count";
  }
  return sql;
}

struct LevelChunk {
  int64_t level;
  Chunk chunk;
};

// Writes `chunks`; with kMergeChecked, adds the (level, chunk) pairs merged to `applied`.
Status Write(store::Transaction& tx, int64_t run_id, int64_t key_id,
             std::span<const LevelChunk> chunks, Upsert mode,
             std::set<std::pair<int64_t, int64_t>>* applied) {
  for (size_t start = 0; start < chunks.size(); start += kRowsPerStatement) {
    size_t n = std::min(kRowsPerStatement, chunks.size() - start);
    store::Params params;
    params.reserve(n * 11);
    for (size_t i = start; i < start + n; ++i) {
      const Chunk& c = chunks[i].chunk;
      params.insert(params.end(), {run_id, key_id, chunks[i].level, c.chunk, c.first_step,
                                   c.last_step, DoubleOrNull(c.last_value), c.last_ts,
                                   DoubleOrNull(c.min), DoubleOrNull(c.max), c.count});
    }
    if (mode == Upsert::kMergeChecked) {
      ASSIGN_OR_RETURN(auto rows, tx.Query(UpsertSql(n, mode), params));
      for (const auto& r : rows) applied->emplace(r.Int(0), r.Int(1));
    } else {
      RETURN_IF_ERROR(tx.Exec(UpsertSql(n, mode), params).status());
    }
  }
  return Status::Ok();
}

// Recomputes chunks [a, b] of level index `li` from the points (li = 0) or from level li - 1.
Status Recompute(store::Transaction& tx, int64_t run_id, int64_t key_id, size_t li, int64_t a,
                 int64_t b) {
  const int64_t level = kRollupLevels[li];
  std::vector<Chunk> fresh;
  if (li == 0) {
    ASSIGN_OR_RETURN(auto rows, tx.Query("SELECT step, value, ts FROM track_points WHERE run_id "
                                         "= ? AND key_id = ? AND step >= ? AND step <= ? "
                                         "ORDER BY step",
                                         {run_id, key_id, a * level, ChunkEnd(b, level)}));
    std::vector<SeriesPoint> points;
    points.reserve(rows.size());
    for (const auto& r : rows) points.push_back({r.Int(0), DoubleOf(r, 1), r.Int(2)});
    fresh = ChunksOf(points, level);
  } else {
    const int64_t ratio = level / kRollupLevels[li - 1];
    ASSIGN_OR_RETURN(
        auto rows,
        tx.Query(std::string("SELECT ") + kChunkColumns +
                     " FROM track_rollups WHERE run_id = ? AND key_id = ? AND "
                     "width = ? AND chunk >= ? AND chunk <= ? ORDER BY chunk",
                 {run_id, key_id, kRollupLevels[li - 1], a * ratio, b * ratio + ratio - 1}));
    for (const auto& r : rows) {
      Chunk child = ChunkOf(r);
      int64_t id = child.chunk / ratio;
      if (fresh.empty() || fresh.back().chunk != id) fresh.push_back(Chunk{.chunk = id});
      Merge(fresh.back(), child);
    }
  }
  std::vector<LevelChunk> out;
  out.reserve(fresh.size());
  for (const auto& c : fresh) out.push_back({level, c});
  return Write(tx, run_id, key_id, out, Upsert::kReplace, nullptr);
}

}  // namespace

Status UpdateRollups(store::Transaction& tx, int64_t run_id, int64_t key_id,
                     std::span<const SeriesPoint> batch, bool appends) {
  if (batch.empty()) return Status::Ok();
  std::vector<LevelChunk> chunks;
  for (int64_t level : kRollupLevels) {
    for (auto& c : ChunksOf(batch, level)) chunks.push_back({level, c});
  }
  if (appends) return Write(tx, run_id, key_id, chunks, Upsert::kMerge, nullptr);
  std::set<std::pair<int64_t, int64_t>> applied;
  RETURN_IF_ERROR(Write(tx, run_id, key_id, chunks, Upsert::kMergeChecked, &applied));
  if (applied.size() == chunks.size()) return Status::Ok();
  // The batch rewrote or filled in steps of existing chunks: recompute those, finest level
  // first (each level is rebuilt from the one below).
  for (size_t li = 0; li < kLevels; ++li) {
    std::vector<int64_t> stale;
    for (const auto& lc : chunks) {
      if (lc.level == kRollupLevels[li] && !applied.count({lc.level, lc.chunk.chunk})) {
        stale.push_back(lc.chunk.chunk);
      }
    }
    // Consecutive chunks are recomputed with one read.
    for (size_t i = 0; i < stale.size();) {
      size_t j = i;
      while (j + 1 < stale.size() && stale[j + 1] == stale[j] + 1) ++j;
      RETURN_IF_ERROR(Recompute(tx, run_id, key_id, li, stale[i], stale[j]));
      i = j + 1;
    }
  }
  return Status::Ok();
}

Result<RollupHistory> ReadRollupHistory(store::Executor& db, int64_t run_id, int64_t key_id,
                                        int64_t first, int64_t last, const BucketGrid& grid) {
  const int64_t level = grid.level;
  ASSIGN_OR_RETURN(auto rows, db.Query(std::string("SELECT ") + kChunkColumns +
                                           " FROM track_rollups WHERE run_id = ? AND key_id = ? "
                                           "AND width = ? AND chunk >= ? AND chunk <= ? ORDER "
                                           "BY chunk",
                                       {run_id, key_id, level, first / level, last / level}));
  std::vector<Chunk> chunks;
  chunks.reserve(rows.size());
  for (const auto& r : rows) chunks.push_back(ChunkOf(r));
  // The end chunks may hold points outside [first, last] (a min_step/max_step range): those
  // are aggregated from the points themselves.
  auto partial = [&](int64_t id, int64_t lo, int64_t hi) -> Result<Chunk> {
    ASSIGN_OR_RETURN(auto points, db.Query("SELECT step, value, ts FROM track_points WHERE "
                                           "run_id = ? AND key_id = ? AND step >= ? AND step "
                                           "<= ? ORDER BY step",
                                           {run_id, key_id, lo, hi}));
    Chunk c{.chunk = id};
    for (const auto& r : points) Add(c, {r.Int(0), DoubleOf(r, 1), r.Int(2)});
    return c;
  };
  if (!chunks.empty() && chunks.front().first_step < first) {
    Chunk& c = chunks.front();
    ASSIGN_OR_RETURN(c, partial(c.chunk, first, std::min(last, ChunkEnd(c.chunk, level))));
  }
  if (!chunks.empty() && chunks.back().last_step > last) {
    Chunk& c = chunks.back();
    ASSIGN_OR_RETURN(c, partial(c.chunk, std::max(first, c.chunk * level), last));
  }
  RollupHistory out;
  out.buckets.reserve(chunks.size() / static_cast<size_t>(grid.width / level) + 1);
  uint64_t bucket_end = 0;  // exclusive offset from the origin
  for (const auto& c : chunks) {
    if (c.count == 0) continue;
    const uint64_t offset =
        static_cast<uint64_t>(c.chunk * level) - static_cast<uint64_t>(grid.origin);
    if (out.buckets.empty() || offset >= bucket_end) {
      bucket_end = (offset / grid.width + 1) * grid.width;
      out.buckets.push_back(Bucket{.step = c.last_step,
                                   .value = c.last_value,
                                   .ts_ms = c.last_ts,
                                   .min = c.min,
                                   .max = c.max,
                                   .count = c.count});
    } else {
      Bucket& b = out.buckets.back();
      b.step = c.last_step;
      b.value = c.last_value;
      b.ts_ms = c.last_ts;
      b.count += c.count;
      if (!std::isnan(c.min) && !(b.min <= c.min)) b.min = c.min;
      if (!std::isnan(c.max) && !(b.max >= c.max)) b.max = c.max;
    }
    out.total += c.count;
  }
  return out;
}

}  // namespace atrium::track
