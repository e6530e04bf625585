#include "daemon/role.hpp"

#include "accounts/record.hpp"
#include "db/follower.hpp"
#include "db/writer.hpp"

namespace accountsd {

void NodeRole::become_primary(const db::Writer* writer, std::string address) {
  std::lock_guard lock(mutex_);
  writer_ = writer;
  follower_ = nullptr;
  replica_ = false;
  promote_ = false;
  primary_ = std::move(address);
  since_ms_ = accounts::now_ms();
}

void NodeRole::become_replica(db::Follower* follower, bool promote) {
  std::lock_guard lock(mutex_);
  writer_ = nullptr;
  follower_ = follower;
  replica_ = true;
  promote_ = promote;
  since_ms_ = accounts::now_ms();
}

void NodeRole::forward_touches(std::vector<std::pair<std::array<uint8_t, 16>, int64_t>> touches) {
  std::lock_guard lock(mutex_);
  if (follower_ != nullptr) follower_->forward_touches(std::move(touches));
}

void NodeRole::set_primary_address(std::string address) {
  std::lock_guard lock(mutex_);
  primary_ = std::move(address);
}

NodeRole::View NodeRole::view() const {
  std::lock_guard lock(mutex_);
  View v;
  v.replica = replica_;
  v.primary = primary_;
  v.since_ms = since_ms_;
  v.promote = promote_;
  if (follower_ != nullptr) {
    v.position = follower_->applied();
    v.lag_ms = follower_->lag_ms();
    v.reloads = follower_->reloads();
    v.following = follower_->connected();
  } else if (writer_ != nullptr) {
    v.position = writer_->position();
  }
  return v;
}

int64_t NodeRole::lag_ms() const {
  if (!replica_.load(std::memory_order_acquire)) return 0;
  std::lock_guard lock(mutex_);
  return follower_ != nullptr ? follower_->lag_ms() : 0;
}

bool NodeRole::replica() const {
  std::lock_guard lock(mutex_);
  return replica_;
}

uint64_t NodeRole::position() const {
  std::lock_guard lock(mutex_);
  if (follower_ != nullptr) return follower_->applied();
  return writer_ != nullptr ? writer_->position() : 0;
}

}  // namespace accountsd
