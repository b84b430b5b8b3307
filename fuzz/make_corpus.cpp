// Writes the seed corpus for fuzz_decoders: one valid frame per message type (and one stream of
// several frames), with realistic field values. Usage: make_corpus OUT_DIR
// Build (as fuzz/run_fuzz.sh builds the target, without the sanitizers), from the repository root:
//   flatc --cpp -o /tmp/gen common/schema/shmarray.fbs
//   clang++-16 -std=c++2b -Icommon/include -I/tmp/gen -Wno-builtin-macro-redefined
//     -U__cpp_concepts -D__cpp_concepts=202002L fuzz/make_corpus.cpp
//     common/src/{error,dtype,types,frame,messages}.cpp -o /tmp/make_corpus
//   /tmp/make_corpus fuzz/corpus
#include <cstdio>
#include <string>
#include <vector>

#include "shmarray/wire/frame.hpp"
#include "shmarray/wire/messages.hpp"

namespace {

namespace wire = shmarray::wire;

shmarray::ArrayInfo sample_info() {
  shmarray::ArrayInfo i;
  i.name = "frames/cam0";
  i.dtype = "<f4";
  i.shape = {480, 640};
  i.strides = {2560, 4};
  i.itemsize = 4;
  i.nbytes = 480 * 640 * 4;
  i.data_offset = 4096;
  i.segment_bytes = 4096 + 480 * 640 * 4;
  i.id = "0123456789abcdef0123456789abcdef";
  i.owner_uid = 1000;
  i.owner_gid = 1000;
  i.mode = 0640;
  i.created_unix_ns = 1'700'000'000'000'000'000;
  i.open_handles = 2;
  i.version = 7;
  return i;
}

bool write_file(const std::string& path, const std::vector<std::byte>& bytes) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  const bool ok = std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus OUT_DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  std::vector<std::pair<std::string, std::vector<std::byte>>> seeds;
  auto add = [&](const char* name, const auto& m, bool has_fd = false) {
    seeds.emplace_back(name, wire::encode_message(m, 1, has_fd));
  };
  add("hello_request", wire::HelloRequest{1, 1, "shmarray-client"});
  add("hello_reply", wire::HelloReply{1, 4242, "0.1.0", 1ull << 30});
  add("create_request", wire::CreateRequest{"frames/cam0", {"<f4", {480, 640}, {}, 0640, true}});
  add("create_reply", wire::CreateReply{sample_info()}, true);
  add("open_request", wire::OpenRequest{"frames/cam0", shmarray::Access::kReadWrite, 500});
  add("open_reply", wire::OpenReply{sample_info(), shmarray::Access::kReadOnly}, true);
  add("remove_request", wire::RemoveRequest{"frames/cam0"});
  add("list_request", wire::ListRequest{"frames/"});
  add("list_reply", wire::ListReply{{sample_info(), sample_info()}});
  add("stat_reply", wire::StatReply{sample_info()});
  add("chmod_request", wire::ChmodRequest{"frames/cam0", 0644});
  add("close_request", wire::CloseRequest{"0123456789abcdef0123456789abcdef"});
  add("watch_request", wire::WatchRequest{"frames/"});
  add("event", wire::Event{wire::EventKind::kRemoved, "frames/cam0", sample_info()});
  add("error_reply", wire::ErrorReply{shmarray::ErrorCode::kNotFound, "no array named 'x'"});
  std::vector<std::byte> stream;  // a session's worth of frames back to back
  for (const char* name : {"hello_request", "create_request", "open_request", "remove_request"}) {
    for (const auto& [n, bytes] : seeds) {
      if (n == name) stream.insert(stream.end(), bytes.begin(), bytes.end());
    }
  }
  seeds.emplace_back("session_stream", stream);
  for (const auto& [name, bytes] : seeds) {
    if (!write_file(dir + "/" + name + ".bin", bytes)) {
      std::fprintf(stderr, "cannot write %s/%s.bin\n", dir.c_str(), name.c_str());
      return 1;
    }
  }
  std::printf("wrote %zu seeds to %s\n", seeds.size(), dir.c_str());
  return 0;
}
