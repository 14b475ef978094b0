#include "atrium/embed/result_cache.h"

#include <algorithm>
#include <list>
#include <map>
#include <unordered_map>

#include "atrium/core/metrics.h"

namespace atrium::embed {
namespace {

// Fixed charge per entry for the list/map nodes and the vector header.
constexpr size_t kEntryOverhead = 96;

struct Entry {
  std::string key;
  CachedVector value;
  size_t bytes = 0;
};

// Least recently used: one list, most recent at the front.
class LruPolicy final : public EvictionPolicy {
 public:
  explicit LruPolicy(size_t capacity) : capacity_(capacity) {}

  CachedVector Get(const std::string& key) override {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second);
    return it->second->value;
  }

  void Put(const std::string& key, CachedVector value, size_t bytes) override {
    if (auto it = index_.find(key); it != index_.end()) {
      bytes_ -= it->second->bytes;
      order_.erase(it->second);
      index_.erase(it);
    }
    if (bytes > capacity_) return;
    while (bytes_ + bytes > capacity_ && !order_.empty()) {
      bytes_ -= order_.back().bytes;
      index_.erase(order_.back().key);
      order_.pop_back();
      ++evictions_;
    }
    order_.push_front(Entry{key, std::move(value), bytes});
    index_[key] = order_.begin();
    bytes_ += bytes;
  }

  size_t bytes() const override { return bytes_; }
  size_t entries() const override { return index_.size(); }
  uint64_t evictions() const override { return evictions_; }

 private:
  const size_t capacity_;
  std::list<Entry> order_;
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t bytes_ = 0;
  uint64_t evictions_ = 0;
};

// Least frequently used; among equally frequent entries the least recent goes first.
class LfuPolicy final : public EvictionPolicy {
 public:
  explicit LfuPolicy(size_t capacity) : capacity_(capacity) {}

  CachedVector Get(const std::string& key) override {
    auto it = index_.find(key);
    if (it == index_.end()) return nullptr;
    Touch(it->second);
    return it->second.entry->value;
  }

  void Put(const std::string& key, CachedVector value, size_t bytes) override {
    if (auto it = index_.find(key); it != index_.end()) {
      bytes_ += bytes;
      bytes_ -= it->second.entry->bytes;
      it->second.entry->value = std::move(value);
      it->second.entry->bytes = bytes;
      Touch(it->second);
      EvictUntilFits(0);
      return;
    }
    if (bytes > capacity_) return;
    EvictUntilFits(bytes);
    auto& list = by_freq_[1];
    list.push_front(Entry{key, std::move(value), bytes});
    index_[key] = Node{1, list.begin()};
    bytes_ += bytes;
  }

  size_t bytes() const override { return bytes_; }
  size_t entries() const override { return index_.size(); }
  uint64_t evictions() const override { return evictions_; }

 private:
  struct Node {
    uint64_t freq;
    std::list<Entry>::iterator entry;
  };

  void Touch(Node& node) {
    auto from = by_freq_.find(node.freq);
    auto& to = by_freq_[node.freq + 1];
    to.splice(to.begin(), from->second, node.entry);
    if (from->second.empty()) by_freq_.erase(from);
    ++node.freq;
  }

  void EvictUntilFits(size_t incoming) {
    while (bytes_ + incoming > capacity_ && !by_freq_.empty()) {
      auto lowest = by_freq_.begin();
      Entry& victim = lowest->second.back();
      bytes_ -= victim.bytes;
      index_.erase(victim.key);
      lowest->second.pop_back();
      if (lowest->second.empty()) by_freq_.erase(lowest);
      ++evictions_;
    }
  }

  const size_t capacity_;
  std::map<uint64_t, std::list<Entry>> by_freq_;  // each list: most recent at the front
  std::unordered_map<std::string, Node> index_;
  size_t bytes_ = 0;
  uint64_t evictions_ = 0;
};

// Adaptive replacement (Megiddo & Modha), with sizes in bytes: T1 holds entries seen once
// recently, T2 entries seen at least twice; B1/B2 remember the keys (and sizes) recently evicted
// from them. A hit in a ghost list moves the target size p of T1 toward the list that would
// have kept the entry.
class ArcPolicy final : public EvictionPolicy {
 public:
  explicit ArcPolicy(size_t capacity) : capacity_(capacity) {}

  CachedVector Get(const std::string& key) override {
    auto it = index_.find(key);
    if (it == index_.end() || it->second.list >= kB1) return nullptr;
    MoveTo(it->second, kT2);
    return it->second.entry->value;
  }

  void Put(const std::string& key, CachedVector value, size_t bytes) override {
    auto it = index_.find(key);
    if (it != index_.end() && it->second.list < kB1) {
      list_bytes_[it->second.list] += bytes;
      list_bytes_[it->second.list] -= it->second.entry->bytes;
      it->second.entry->value = std::move(value);
      it->second.entry->bytes = bytes;
      MoveTo(it->second, kT2);
      Replace(0, false);
      return;
    }
    if (bytes > capacity_) return;
    if (it != index_.end()) {
      // A ghost hit: adapt p, then bring the entry back into T2.
      bool in_b2 = it->second.list == kB2;
      size_t b1 = std::max<size_t>(list_bytes_[kB1], 1);
      size_t b2 = std::max<size_t>(list_bytes_[kB2], 1);
      if (in_b2) {
        size_t delta = std::max(bytes, bytes * b1 / b2);
        p_ = p_ > delta ? p_ - delta : 0;
      } else {
        p_ = std::min(capacity_, p_ + std::max(bytes, bytes * b2 / b1));
      }
      Remove(it);
      Replace(bytes, in_b2);
      Insert(key, std::move(value), bytes, kT2);
      return;
    }
    // A new key: keep |T1| + |B1| <= c and the whole directory <= 2c.
    size_t l1 = list_bytes_[kT1] + list_bytes_[kB1];
    while (l1 + bytes > capacity_ && list_bytes_[kB1] > 0) {
      l1 -= DropLru(kB1);
    }
    while (list_bytes_[kT1] + bytes > capacity_ && !lists_[kT1].empty()) {
      DropLru(kT1);  // B1 is empty: evict outright
      ++evictions_;
    }
    size_t total = list_bytes_[kT1] + list_bytes_[kT2] + list_bytes_[kB1] + list_bytes_[kB2];
    while (total + bytes > 2 * capacity_ && list_bytes_[kB2] > 0) {
      total -= DropLru(kB2);
    }
    Replace(bytes, false);
    Insert(key, std::move(value), bytes, kT1);
  }

  size_t bytes() const override { return list_bytes_[kT1] + list_bytes_[kT2]; }
  size_t entries() const override { return lists_[kT1].size() + lists_[kT2].size(); }
  uint64_t evictions() const override { return evictions_; }

 private:
  enum ListId { kT1 = 0, kT2 = 1, kB1 = 2, kB2 = 3 };
  struct Node {
    int list;
    std::list<Entry>::iterator entry;
  };

  void Insert(const std::string& key, CachedVector value, size_t bytes, int list) {
    lists_[list].push_front(Entry{key, std::move(value), bytes});
    index_[key] = Node{list, lists_[list].begin()};
    list_bytes_[list] += bytes;
  }

  void MoveTo(Node& node, int list) {
    size_t b = node.entry->bytes;
    lists_[list].splice(lists_[list].begin(), lists_[node.list], node.entry);
    list_bytes_[node.list] -= b;
    list_bytes_[list] += b;
    node.list = list;
  }

  void Remove(std::unordered_map<std::string, Node>::iterator it) {
    list_bytes_[it->second.list] -= it->second.entry->bytes;
    lists_[it->second.list].erase(it->second.entry);
    index_.erase(it);
  }

  // Drops the least recent entry of `list` from the directory; returns its bytes.
  size_t DropLru(int list) {
    Entry& e = lists_[list].back();
    size_t b = e.bytes;
    list_bytes_[list] -= b;
    index_.erase(e.key);
    lists_[list].pop_back();
    return b;
  }

  // Demotes the least recent resident entry of T1 or T2 to its ghost list (value freed).
  void Demote(int from, int ghost) {
    Entry& e = lists_[from].back();
    auto it = index_.find(e.key);
    e.value.reset();
    MoveTo(it->second, ghost);
    // MoveTo splices the back element to the ghost's front: the node's iterator stays valid.
    ++evictions_;
  }

  // Frees room for `incoming` bytes among the residents, per ARC's REPLACE.
  void Replace(size_t incoming, bool ghost_hit_in_b2) {
    while (list_bytes_[kT1] + list_bytes_[kT2] + incoming > capacity_) {
      bool t1_over = list_bytes_[kT1] > p_ || (ghost_hit_in_b2 && list_bytes_[kT1] == p_);
      if (!lists_[kT1].empty() && (t1_over || lists_[kT2].empty())) {
        Demote(kT1, kB1);
      } else if (!lists_[kT2].empty()) {
        Demote(kT2, kB2);
      } else {
        break;
      }
    }
  }

  const size_t capacity_;
  size_t p_ = 0;  // target bytes of T1
  std::list<Entry> lists_[4];
  size_t list_bytes_[4] = {0, 0, 0, 0};
  std::unordered_map<std::string, Node> index_;
  uint64_t evictions_ = 0;
};

}  // namespace

Result<CachePolicy> ParseCachePolicy(std::string_view name) {
  if (name == "lru") return CachePolicy::kLru;
  if (name == "lfu") return CachePolicy::kLfu;
  if (name == "arc") return CachePolicy::kArc;
  return InvalidArgument("cache policy: expected lru, lfu or arc, got '" + std::string(name) + "'");
}

size_t ResultCache::EntryBytes(const std::string& key, const std::vector<float>& value) {
  return key.size() + value.size() * sizeof(float) + kEntryOverhead;
}

ResultCache::ResultCache(CachePolicy policy, size_t max_bytes, MetricsRegistry* metrics)
    : max_bytes_(max_bytes) {
  switch (policy) {
    case CachePolicy::kLru:
      policy_ = std::make_unique<LruPolicy>(max_bytes);
      break;
    case CachePolicy::kLfu:
      policy_ = std::make_unique<LfuPolicy>(max_bytes);
      break;
    case CachePolicy::kArc:
      policy_ = std::make_unique<ArcPolicy>(max_bytes);
      break;
  }
  if (metrics != nullptr) {
    hit_counter_ = &metrics->Counter("embed_cache_hits_total", "Embedding cache hits").Get();
    miss_counter_ = &metrics->Counter("embed_cache_misses_total", "Embedding cache misses").Get();
    metrics->GaugeFunc("embed_cache_bytes", "Bytes held by the embedding cache",
                       [this] { return static_cast<double>(stats().bytes); });
    metrics->GaugeFunc("embed_cache_entries", "Entries in the embedding cache",
                       [this] { return static_cast<double>(stats().entries); });
  }
}

ResultCache::~ResultCache() = default;

CachedVector ResultCache::Get(const std::string& key) {
  if (max_bytes_ == 0) return nullptr;
  CachedVector found;
  {
    std::lock_guard lock(mu_);
    found = policy_->Get(key);
    ++(found ? hits_ : misses_);
  }
  if (Counter* c = found ? hit_counter_ : miss_counter_; c != nullptr) c->Inc();
  return found;
}

void ResultCache::Put(const std::string& key, CachedVector value) {
  if (max_bytes_ == 0 || value == nullptr) return;
  size_t bytes = EntryBytes(key, *value);
  std::lock_guard lock(mu_);
  policy_->Put(key, std::move(value), bytes);
}

ResultCache::Stats ResultCache::stats() const {
  std::lock_guard lock(mu_);
  return Stats{.hits = hits_,
               .misses = misses_,
               .evictions = policy_->evictions(),
               .entries = policy_->entries(),
               .bytes = policy_->bytes()};
}

}  // namespace atrium::embed
