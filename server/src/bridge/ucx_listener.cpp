#include "ucx_listener.hpp"

#include "socket_address.hpp"

namespace shmarray::bridge {

void UcxListener::on_request(ucp_conn_request_h request, void* arg) {
  static_cast<UcxListener*>(arg)->requests_.push_back(request);
}

Result<std::unique_ptr<UcxListener>> UcxListener::listen(std::shared_ptr<UcxContext> context,
                                                         const std::string& address) {
  auto resolved = resolve_address(address, true);
  if (!resolved) return std::unexpected(resolved.error());
  auto worker = UcxWorker::create(std::move(context));
  if (!worker) return std::unexpected(worker.error());
  std::unique_ptr<UcxListener> self(new UcxListener(std::move(*worker)));
  ucp_listener_params_t params{};
  params.field_mask = UCP_LISTENER_PARAM_FIELD_SOCK_ADDR | UCP_LISTENER_PARAM_FIELD_CONN_HANDLER;
  params.sockaddr.addr = reinterpret_cast<const sockaddr*>(&resolved->storage);
  params.sockaddr.addrlen = resolved->length;
  params.conn_handler.cb = &UcxListener::on_request;
  params.conn_handler.arg = self.get();
  if (auto st = ::ucp_listener_create(self->worker_.get(), &params, &self->listener_);
      st != UCS_OK) {
    self->listener_ = nullptr;
    return std::unexpected(
        ucx_error("cannot listen for peers on " + address + " (--peer-listen)", st));
  }
  ucp_listener_attr_t attr{};
  attr.field_mask = UCP_LISTENER_ATTR_FIELD_SOCKADDR;
  self->bound_ = ::ucp_listener_query(self->listener_, &attr) == UCS_OK
                     ? to_string(attr.sockaddr)
                     : address;
  return self;
}

UcxListener::~UcxListener() {
  for (auto request : requests_) ::ucp_listener_reject(listener_, request);
  if (listener_ != nullptr) ::ucp_listener_destroy(listener_);
}

ucp_conn_request_h UcxListener::take(std::chrono::milliseconds timeout) {
  if (requests_.empty()) worker_.wait(timeout);
  while (worker_.progress()) {
  }
  if (requests_.empty()) return nullptr;
  auto request = requests_.front();
  requests_.pop_front();
  return request;
}

}  // namespace shmarray::bridge
