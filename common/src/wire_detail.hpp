#pragma once
// Private to the wire encoders (messages.cpp, stream_messages.cpp): the ArrayInfo table, which
// both files' messages carry, and the stream status inside it.
#include <flatbuffers/flatbuffers.h>

#include "shmarray/error.hpp"
#include "shmarray/types.hpp"
#include "shmarray_generated.h"

namespace shmarray::wire::detail {

[[nodiscard]] flatbuffers::Offset<fb::ArrayInfo> put_info(flatbuffers::FlatBufferBuilder& b,
                                                          const ArrayInfo& info);
[[nodiscard]] Result<ArrayInfo> get_info(const fb::ArrayInfo* f);
[[nodiscard]] flatbuffers::Offset<fb::StreamStatus> put_stream_status(
    flatbuffers::FlatBufferBuilder& b, const StreamStatus& status);
// kProtocolError for a missing table or out-of-range values.
[[nodiscard]] Result<StreamStatus> get_stream_status(const fb::StreamStatus* f);

}  // namespace shmarray::wire::detail
