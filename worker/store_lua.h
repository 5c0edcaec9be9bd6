/*
 * store_lua.h — the Redis function library behind the redis store (FUNCTION LOAD by rds.c on every connect).
 *
 * Why Redis 7 functions and not EVALSHA: a library is loaded once per connection under a name, survives
 * SCRIPT FLUSH, is replicated and persisted with the data set, and FCALL declares its keys (cluster-safe);
 * EVALSHA needs the SHA known and a NOSCRIPT round trip after every server restart.
 *
 * Keys of one client (cid) in bucket b share the hash tag {b<b>}, so all of a bucket's clients sit in one
 * Redis slot and one FCALL can touch them all:
 *   rmq:{bN}:<cid>:m   hash: v version, e session expiry (s), h next message seq, l lowest live seq,
 *                      x expire-at (unix ms, only while offline), n the node that owns the session (a
 *                      cluster's sessions live on one node at a time; absent: node 0), w<P> the highest
 *                      offset of Kafka inbox partition P whose copy was queued ('a': a re-delivered record
 *                      is not queued twice)
 *   rmq:{bN}:<cid>:q   hash: seq -> message blob
 *   rmq:{bN}:<cid>:p   hash: seq -> "pid,state" once the message was sent
 *   rmq:{bN}:<cid>:u   hash: filter -> "qos,no_local,rap,retain_handling,subid"
 *   rmq:{bN}:<cid>:r   set: inbound QoS 2 packet ids awaiting PUBREL
 *   rmq:{bN}:idx       set: client ids with a session in this bucket (start-up restore)
 *   rmq:{bN}:quarantine hash: "<cid>:<seq>" -> blobs that could not be decoded
 * ringmq_batch(keys = {"rmq:{bN}"}, args = op records) runs a bucket's operations of one flush in order and
 * returns one result per operation. Ownership (a cluster): W claims a session for a node and returns the
 * previous owner (-1: no session), S reads a session's record and subscriptions, B does nothing (its answer
 * says every earlier operation of the bucket is done). ringmq_restore(keys, {now, node[, to]}) lists the node's
 * sessions of one bucket (and makes node `to` their owner: a dead node's sessions adopted): {expired, s1, s2...}
 * where expired counts the sessions found offline past their expiry (deleted here) and each s is one string,
 * "cid NUL v NUL e NUL h NUL x (NUL filter NUL options)*" (absent fields empty): one reply object per session
 * instead of a nested table, which is what made a 1M-session restore slow to build and to parse. Client ids and
 * filters are MQTT strings, which cannot hold NUL [MQTT-1.5.4-2]. Every operation is idempotent, so a batch
 * whose outcome is unknown is simply sent again.
 */
#ifndef RINGMQ_WORKER_STORE_LUA_H
#define RINGMQ_WORKER_STORE_LUA_H

static const char store_lua[] =
"#!lua name=ringmq\n"
"local function k(tag, cid, s) return tag .. ':' .. cid .. ':' .. s end\n"
"local parts = {'m', 'q', 'p', 'u', 'r'}\n"
"local function batch(keys, args)\n"
"  local tag = keys[1]\n"
"  local out = {}\n"
"  local i, n = 1, #args\n"
"  while i <= n do\n"
"    local op, cid = args[i], args[i + 1]\n"
"    local m = k(tag, cid, 'm')\n"
"    local r = 0\n"
"    if op == 'M' then\n"
"      redis.call('HSET', m, 'v', args[i + 2], 'e', args[i + 3], 'n', args[i + 4])\n"
"      redis.call('HDEL', m, 'x')\n"
"      for _, s in ipairs(parts) do redis.call('PERSIST', k(tag, cid, s)) end\n"
"      redis.call('SADD', tag .. ':idx', cid)\n"
"      i = i + 5\n"
"    elseif op == 'W' then\n"
"      if redis.call('EXISTS', m) == 1 then\n"
"        r = tonumber(redis.call('HGET', m, 'n') or '0')\n"
"        redis.call('HSET', m, 'n', args[i + 2])\n"
"      else\n"
"        r = -1\n"
"      end\n"
"      i = i + 3\n"
"    elseif op == 'S' then\n"
"      local meta = redis.call('HGETALL', m)\n"
"      if #meta > 0 then r = {cid, meta, redis.call('HGETALL', k(tag, cid, 'u'))} else r = {} end\n"
"      i = i + 2\n"
"    elseif op == 'B' then\n"
"      i = i + 2\n"
"    elseif op == 'O' then\n"
"      local at = tonumber(args[i + 2])\n"
"      if at > 0 and redis.call('EXISTS', m) == 1 then\n"
"        redis.call('HSET', m, 'x', args[i + 2])\n"
"        for _, s in ipairs(parts) do redis.call('PEXPIREAT', k(tag, cid, s), at) end\n"
"      end\n"
"      i = i + 3\n"
"    elseif op == 'X' then\n"
"      redis.call('DEL', m, k(tag, cid, 'q'), k(tag, cid, 'p'), k(tag, cid, 'u'), k(tag, cid, 'r'))\n"
"      redis.call('SREM', tag .. ':idx', cid)\n"
"      i = i + 2\n"
"    elseif op == 'U' then\n"
"      redis.call('HSET', k(tag, cid, 'u'), args[i + 2], args[i + 3])\n"
"      i = i + 4\n"
"    elseif op == 'V' then\n"
"      redis.call('HDEL', k(tag, cid, 'u'), args[i + 2])\n"
"      i = i + 3\n"
"    elseif op == 'A' or op == 'a' then\n"
"      local q = k(tag, cid, 'q')\n"
"      local seq = tonumber(args[i + 2])\n"
"      local limit = tonumber(args[i + 4])\n"
"      local skip = false\n"
"      if op == 'a' then\n"
"        local wk = 'w' .. args[i + 5]\n"
"        local wm = tonumber(redis.call('HGET', m, wk) or '-1')\n"
"        if tonumber(args[i + 6]) <= wm then skip = true else redis.call('HSET', m, wk, args[i + 6]) end\n"
"      end\n"
"      if skip then\n"
"        r = -1\n"
"      else\n"
"      redis.call('HSET', q, args[i + 2], args[i + 3])\n"
"      local hi = tonumber(redis.call('HGET', m, 'h') or '0')\n"
"      if seq + 1 > hi then redis.call('HSET', m, 'h', seq + 1) end\n"
"      local cnt = redis.call('HLEN', q)\n"
"      if cnt == 1 then redis.call('HSET', m, 'l', seq) end\n"
"      if cnt > limit then\n"
"        local lo = tonumber(redis.call('HGET', m, 'l') or '0')\n"
"        local p = k(tag, cid, 'p')\n"
"        while cnt > limit and lo <= seq do\n"
"          if redis.call('HDEL', q, lo) == 1 then\n"
"            cnt = cnt - 1\n"
"            r = r + 1\n"
"            redis.call('HDEL', p, lo)\n"
"          end\n"
"          lo = lo + 1\n"
"        end\n"
"        redis.call('HSET', m, 'l', lo)\n"
"      end\n"
"      local x = redis.call('HGET', m, 'x')\n"
"      if x then redis.call('PEXPIREAT', q, x) end\n"
"      end\n"
"      if op == 'a' then i = i + 7 else i = i + 5 end\n"
"    elseif op == 'P' then\n"
"      if redis.call('HEXISTS', k(tag, cid, 'q'), args[i + 2]) == 1 then\n"
"        redis.call('HSET', k(tag, cid, 'p'), args[i + 2], args[i + 3])\n"
"      end\n"
"      i = i + 4\n"
"    elseif op == 'D' then\n"
"      redis.call('HDEL', k(tag, cid, 'q'), args[i + 2])\n"
"      redis.call('HDEL', k(tag, cid, 'p'), args[i + 2])\n"
"      i = i + 3\n"
"    elseif op == 'I' then\n"
"      redis.call('SADD', k(tag, cid, 'r'), args[i + 2])\n"
"      i = i + 3\n"
"    elseif op == 'J' then\n"
"      redis.call('SREM', k(tag, cid, 'r'), args[i + 2])\n"
"      i = i + 3\n"
"    elseif op == 'L' then\n"
"      r = {redis.call('HGETALL', m), redis.call('HGETALL', k(tag, cid, 'q')),\n"
"           redis.call('HGETALL', k(tag, cid, 'p')), redis.call('SMEMBERS', k(tag, cid, 'r'))}\n"
"      i = i + 2\n"
"    elseif op == 'Q' then\n"
"      local q = k(tag, cid, 'q')\n"
"      local blob = redis.call('HGET', q, args[i + 2])\n"
"      if blob then redis.call('HSET', tag .. ':quarantine', cid .. ':' .. args[i + 2], blob) end\n"
"      redis.call('HDEL', q, args[i + 2])\n"
"      redis.call('HDEL', k(tag, cid, 'p'), args[i + 2])\n"
"      i = i + 3\n"
"    else\n"
"      return redis.error_reply('ringmq: unknown store op ' .. tostring(op))\n"
"    end\n"
"    out[#out + 1] = r\n"
"  end\n"
"  return out\n"
"end\n"
"local function restore(keys, args)\n"
"  local tag = keys[1]\n"
"  local now = tonumber(args[1])\n"
"  local node = args[2]\n"
"  local out = {0}\n"
"  for _, cid in ipairs(redis.call('SMEMBERS', tag .. ':idx')) do\n"
"    local m = k(tag, cid, 'm')\n"
"    local f = redis.call('HMGET', m, 'v', 'e', 'h', 'x', 'n')\n"
"    local x = tonumber(f[4])\n"
"    if not (f[1] or f[2] or f[3] or f[4] or f[5]) and redis.call('EXISTS', m) == 0 then\n"
"      redis.call('SREM', tag .. ':idx', cid)\n"
"    elseif node and (f[5] or '0') ~= node then\n"
"      -- another node's session (a cluster): it is restored there\n"
"    elseif x and x > 0 and x <= now then\n"
"      -- offline past its expiry: the session ends here\n"
"      redis.call('DEL', m, k(tag, cid, 'q'), k(tag, cid, 'p'), k(tag, cid, 'u'), k(tag, cid, 'r'))\n"
"      redis.call('SREM', tag .. ':idx', cid)\n"
"      out[1] = out[1] + 1\n"
"    else\n"
"      if args[3] then redis.call('HSET', m, 'n', args[3]) end\n"
"      local p = {cid, f[1] or '', f[2] or '', f[3] or '', f[4] or ''}\n"
"      for _, v in ipairs(redis.call('HGETALL', k(tag, cid, 'u'))) do p[#p + 1] = v end\n"
"      out[#out + 1] = table.concat(p, '\\0')\n"
"    end\n"
"  end\n"
"  return out\n"
"end\n"
"redis.register_function('ringmq_batch', batch)\n"
"redis.register_function('ringmq_restore', restore)\n";

#endif
