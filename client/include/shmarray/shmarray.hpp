#pragma once
// The whole public C++ API of shmarray: #include <shmarray/shmarray.hpp>.
#include "shmarray/array.hpp"
#include "shmarray/client.hpp"
#include "shmarray/dtype.hpp"
#include "shmarray/error.hpp"
#include "shmarray/frame.hpp"
#include "shmarray/frame_layout.hpp"
#include "shmarray/socket_path.hpp"
#include "shmarray/types.hpp"
#include "shmarray/watcher.hpp"
