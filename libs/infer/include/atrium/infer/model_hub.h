// Model ids from the Hugging Face Hub: `BAAI/bge-small-en-v1.5` → a local model directory.
//
// ResolveModel returns an existing directory unchanged; anything else is read as a hub model id
// ("org/name", optionally "org/name@revision") and downloaded into a cache laid out the way
// huggingface_hub lays it out, so both tools share one cache:
//
//   <cache_dir>/models--<org>--<name>/refs/<revision>        commit sha of the revision
//   <cache_dir>/models--<org>--<name>/blobs/<sha256|git sha1> file contents
//   <cache_dir>/models--<org>--<name>/snapshots/<sha>/<file> symlinks into blobs/
//
// Only the files an embedding model needs are fetched (config, tokenizer, safetensors weights or
// their shards, sentence-transformers configs). The file list, sizes and hashes come from
// `GET <endpoint>/api/models/<id>/revision/<revision>?blobs=true`; files from
// `GET <endpoint>/<id>/resolve/<sha>/<file>` (redirects followed). Downloads go to
// `blobs/<hash>.incomplete` first and resume from there with a Range request; each file is
// checked (sha256 for LFS files, the git blob sha1 for the others) before it is renamed into
// place. A complete snapshot in the cache is used without contacting the hub when the hub cannot
// be reached or `offline` is set (HF_HUB_OFFLINE=1).
//
// Thread-compatible: concurrent ResolveModel calls for the same model may download twice but
// never corrupt the cache (renames are atomic).
#pragma once

#include <functional>
#include <string>
#include <string_view>

#include "atrium/core/status.h"

namespace atrium::infer {

struct HubOptions {
  std::string endpoint = "https://huggingface.co";  // HF_ENDPOINT
  std::string token;                                // HF_TOKEN (sent as a bearer token)
  std::string cache_dir;                            // ATRIUM_MODEL_CACHE, else $HF_HOME/hub
  bool offline = false;                             // HF_HUB_OFFLINE
  // A progress bar on stderr (a terminal); otherwise progress lines through `log`.
  bool progress_bar = false;
  std::function<void(std::string_view line)> log;
  std::string ca_file;  // extra trusted CAs (PEM), for a private hub mirror
};

// Options from the environment: HF_ENDPOINT, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN), HF_HUB_OFFLINE,
// ATRIUM_MODEL_CACHE, HF_HOME (cache = $HF_HOME/hub), else `default_cache_dir`; the progress bar
// when stderr is a terminal.
HubOptions HubOptionsFromEnvironment(const std::string& default_cache_dir);

// True when `s` has the shape of a hub model id ("org/name" or "name", optional "@revision").
bool LooksLikeModelId(std::string_view s);

// The local directory of `dir_or_id` (see the file comment). NotFound when it is neither an
// existing directory nor a model on the hub; Unauthenticated/PermissionDenied when the hub
// refuses the token; Internal when a download does not match its checksum (the bad file is
// deleted); Unavailable when the hub cannot be reached and nothing usable is cached.
Result<std::string> ResolveModel(const std::string& dir_or_id, const HubOptions& options);

}  // namespace atrium::infer
