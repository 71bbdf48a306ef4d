#include "policy/report_delivery.h"

#include <algorithm>
#include <array>
#include <utility>

namespace mtasts::policy {

namespace {

constexpr std::array<std::pair<DeliveryState, std::string_view>, 5> kStateNames{{
    {DeliveryState::Pending, "pending"},
    {DeliveryState::Sending, "sending"},
    {DeliveryState::Delivered, "delivered"},
    {DeliveryState::Failed, "failed"},
    {DeliveryState::Expired, "expired"},
}};

}  // namespace

std::string_view to_string(DeliveryState state) {
  for (const auto& [value, name] : kStateNames)
    if (value == state) return name;
  return "pending";
}

std::optional<DeliveryState> delivery_state_from_string(std::string_view text) {
  for (const auto& [value, name] : kStateNames)
    if (name == text) return value;
  return std::nullopt;
}

bool is_due(const Delivery& delivery, std::int64_t now, const RetryPolicy& retry) {
  switch (delivery.state) {
    case DeliveryState::Pending:
      return delivery.not_before <= now;
    case DeliveryState::Sending:
      return delivery.claimed_at + retry.stale_claim <= now;
    default:
      return false;
  }
}

bool stale_claim_expired(const Delivery& delivery, std::int64_t now, const RetryPolicy& retry) {
  return delivery.state == DeliveryState::Sending && is_due(delivery, now, retry) &&
         now >= delivery.first_attempt_at + retry.give_up_after;
}

Delivery expired(Delivery delivery, std::int64_t now) {
  delivery.state = DeliveryState::Expired;
  delivery.claimed_at = 0;
  delivery.finished_at = now;
  if (delivery.last_error.empty()) delivery.last_error = "every attempt was cut short";
  return delivery;
}

Delivery claimed(Delivery delivery, std::int64_t now) {
  delivery.state = DeliveryState::Sending;
  delivery.attempts += 1;
  delivery.claimed_at = now;
  if (delivery.first_attempt_at == 0) delivery.first_attempt_at = now;
  return delivery;
}

std::int64_t retry_delay(int attempts, const RetryPolicy& retry) {
  std::int64_t delay = retry.first_retry;
  for (int i = 1; i < attempts && delay < retry.max_interval; ++i) delay *= 2;
  return std::min(delay, retry.max_interval);
}

Delivery after_attempt(Delivery delivery, AttemptOutcome outcome, std::string detail, std::int64_t now,
                       const RetryPolicy& retry) {
  delivery.claimed_at = 0;
  switch (outcome) {
    case AttemptOutcome::Delivered:
      delivery.state = DeliveryState::Delivered;
      delivery.finished_at = now;
      return delivery;
    case AttemptOutcome::Permanent:
      delivery.state = DeliveryState::Failed;
      delivery.finished_at = now;
      delivery.last_error = std::move(detail);
      return delivery;
    case AttemptOutcome::Temporary:
      break;
  }
  delivery.last_error = std::move(detail);
  const std::int64_t next = now + retry_delay(delivery.attempts, retry);
  if (next >= delivery.first_attempt_at + retry.give_up_after) {
    delivery.state = DeliveryState::Expired;
    delivery.finished_at = now;
    return delivery;
  }
  delivery.state = DeliveryState::Pending;
  delivery.not_before = next;
  return delivery;
}

std::uint64_t delivery_hash(std::string_view report_id, std::string_view destination) {
  std::uint64_t h = 14695981039346656037ULL;  // FNV-1a, 64 bits
  const auto mix = [&h](std::string_view text) {
    for (const char c : text) {
      h ^= static_cast<unsigned char>(c);
      h *= 1099511628211ULL;
    }
  };
  mix(report_id);
  mix(std::string_view("\0", 1));  // ("ab", "c") and ("a", "bc") differ
  mix(destination);
  return h;
}

std::int64_t spread_send_time(std::string_view report_id, std::string_view destination, std::int64_t day_end,
                              std::int64_t window) {
  if (window <= 0) return day_end;
  return day_end + static_cast<std::int64_t>(delivery_hash(report_id, destination) %
                                             static_cast<std::uint64_t>(window));
}

}  // namespace mtasts::policy
