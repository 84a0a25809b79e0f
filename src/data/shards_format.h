// data/shards_format.h: the 64-byte shard header in bytes (little-endian, see recur/shards.h), shared by the
// writer (shards.cpp) and the reader (shards_read.cpp).
#pragma once
#include <array>
#include <cstdint>
#include <string>

#include "recur/shards.h"

namespace recur {

std::array<uint8_t, kShardHeaderBytes> encode_shard_header(const ShardHeader& header);
// The header of `file` from its first bytes (size of them: `size`); a wrong magic, version, dtype or vocabulary is
// an Error naming the file and the fix.
ShardHeader decode_shard_header(const uint8_t* bytes, size_t size, const std::string& file);
// The token width a vocabulary needs: 2 bytes up to 65536 entries, else 4.
inline uint32_t shard_token_bytes(int vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

}  // namespace recur
