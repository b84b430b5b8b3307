// libFuzzer target for everything that parses bytes from a peer: the frame header decoder, the
// incremental FrameReader, and every message decoder (wire::decode<M>). Properties checked beyond
// "no crash, no sanitizer report, no hang":
//   - the FrameReader yields the same frames whether the bytes arrive at once or in small pieces;
//   - a body that decodes as M re-encodes to a body that decodes again as M.
// Build and run: fuzz/run_fuzz.sh [SECONDS]. Seeds: fuzz/corpus/ (fuzz/make_corpus.cpp).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/messages.hpp"

namespace {

namespace wire = shmarray::wire;
using Bytes = std::vector<std::byte>;

void check(bool ok) {
  if (!ok) __builtin_trap();
}

template <class M>
void decode_and_round_trip(std::span<const std::byte> body) {
  auto m = wire::decode<M>(body);
  if (!m) return;
  const Bytes again = wire::encode_body(*m);
  check(wire::decode<M>(again).has_value());
}

// Every decoder of the message table, whatever the frame's type says: a peer chooses both.
void decode_every_message(std::span<const std::byte> body) {
#define SHMARRAY_FUZZ_DECODE(name, number) decode_and_round_trip<wire::name>(body);
  SHMARRAY_WIRE_MESSAGES(SHMARRAY_FUZZ_DECODE)
#undef SHMARRAY_FUZZ_DECODE
}

// Frames from `data` fed in pieces of `piece` bytes (0: all at once), until the stream ends or
// turns out malformed. Returns the frames and whether it ended in an error.
std::pair<std::vector<wire::Frame>, bool> read_frames(std::span<const std::byte> data,
                                                      std::size_t piece, std::uint32_t max_body) {
  wire::FrameReader reader(max_body);
  std::vector<wire::Frame> frames;
  std::size_t fed = 0;
  do {
    const std::size_t n = piece == 0 ? data.size() : std::min(piece, data.size() - fed);
    reader.append(data.subspan(fed, n));
    fed += n;
    for (;;) {
      auto next = reader.next();
      if (!next) return {std::move(frames), true};
      if (!next->has_value()) break;
      check((*next)->body.size() == (*next)->header.body_length);
      frames.push_back(std::move(**next));
    }
  } while (fed < data.size());
  check(reader.buffered() < wire::kFrameHeaderSize + max_body);
  return {std::move(frames), false};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);

  (void)wire::decode_header(bytes, wire::kMaxRequestBody);

  // The same stream, at once and in pieces, with the broker's and the client's body limits.
  for (const std::uint32_t max_body : {wire::kMaxRequestBody, std::uint32_t{64}}) {
    auto [whole, whole_failed] = read_frames(bytes, 0, max_body);
    auto [pieces, pieces_failed] = read_frames(bytes, 7, max_body);
    check(whole_failed == pieces_failed && whole.size() == pieces.size());
    for (std::size_t i = 0; i < whole.size(); ++i) {
      check(whole[i].header.type == pieces[i].header.type && whole[i].body == pieces[i].body);
    }
    if (max_body == wire::kMaxRequestBody) {
      for (const auto& frame : whole) decode_every_message(frame.body);
    }
  }

  // The raw bytes as a body (copied: bodies live in their own, aligned, vectors).
  const Bytes body(bytes.begin(), bytes.end());
  decode_every_message(body);
  return 0;
}
