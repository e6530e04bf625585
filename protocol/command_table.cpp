#include "protocol/command_table.hpp"

namespace protocol {

std::optional<Reply> precheck(const CommandSpec& spec, size_t arg_count, const RequestContext& ctx) {
  if (arg_count < static_cast<size_t>(spec.min_args) || arg_count > static_cast<size_t>(spec.max_args))
    return Reply::error(Error::bad_request, "wrong number of arguments; usage: " + spec.usage);
  if (!ctx.authenticated && !(spec.flags & kPublic))
    return Reply::error(Error::auth_required, "AUTH first");
  if (ctx.loading && !(spec.flags & kServedWhileLoading))
    return Reply::error(Error::loading, std::string(ctx.loading_progress));
  if (!ctx.fenced.empty() && !(spec.flags & kServedWhileLoading))
    return Reply::error(Error::fenced, std::string(ctx.fenced));
  if (!ctx.readonly.empty() && (spec.flags & kMutating)) return Reply::error(Error::readonly, std::string(ctx.readonly));
  return std::nullopt;
}

}  // namespace protocol
