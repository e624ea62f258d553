---@meta hotsock

-- Type definitions of hotsock's Lua API for LuaLS (lua-language-server): completion, hover
-- and type checks in your editor. Nothing here runs; the C core provides the real functions.
-- Point LuaLS at this directory with a .luarc.json next to your handlers:
--   { "workspace.library": ["/usr/local/share/hotsock/types"], "runtime.version": "Lua 5.4" }
-- tests/integration/types_spec.lua checks that every name below exists in the running core
-- and that the core registers nothing missing here.

---@alias hotsock.LogLevel "debug"|"info"|"warn"|"error"

---A framing spec: `"raw"`, `"line"`, `"line:max=1024"`, `"length:i32le"`, `"length:u16be:max=64k"`,
---`"fixed:16"`, or a table `{ "line", max = 1024, delim = "\r\n" }`.
---@alias hotsock.FramingSpec string|hotsock.FramingTable

---@class hotsock.FramingTable
---@field [1] "raw"|"line"|"fixed"|string the kind (or a full spec string)
---@field max? integer|string largest message (bytes; `k`, `m`, `g` suffixes in strings)
---@field delim? string line delimiter, 1 to 8 bytes (line framing)

---Every token a runtime failure returns (`nil, token`): the list of docs/lua-api.md#error-tokens
---and of core/errtok.c. A failure outside the list reads `"system error (errno N)"`.
---@alias hotsock.ErrorToken
---| "closed" # the conn, socket, WebSocket, response or file is closed or closing; or the handler's client left while the call waited
---| "output buffer full" # unsent output is over the hard limit (64 MiB by default)
---| "timeout" # the call's timeout passed
---| "connection refused" # nothing listens at the address (UDP: an earlier datagram found no one)
---| "connection reset" # the peer reset the connection while it was being set up
---| "no such host" # the name does not resolve
---| "network unreachable" # no route to the network
---| "host unreachable" # no route to the host
---| "address not available" # no local address or port is free for the connect
---| "permission denied" # the system refused access (a Unix socket or file the process may not use), or a path outside `opts.root`
---| "not found" # no such file, Unix socket or key
---| "buffer full" # the socket's send buffer is full: the datagram was dropped, as UDP may
---| "no memory" # memory ran out (for a shared dictionary: it is full and the call may not evict)
---| "busy" # another coroutine waits on this conn (a receive or a flush)
---| "unread data" # bytes arrived that nobody read
---| "no peer address" # the peer has no address to answer (a unixgram client that bound no name)
---| "proxy: no client address" # `opts.proxy` names a conn whose client address cannot be put in a PROXY header
---| "tls context failed" # the TLS client context could not be made (a CA file that does not load)
---| "tls upgraded" # the conn was upgraded by `conn:tls_handshake`: it cannot go back to a plain pool
---| "protocol error" # the peer broke the protocol (a malformed chunked request body)
---| "line too long" # a line over its framing `max`
---| "frame too large" # a length frame over its framing `max`
---| "negative length" # a signed length header below zero
---| "malformed frame" # the framer refused the input for another reason
---| "bad framing" # the conn's framing is not valid
---| "body too large" # a body over its limit (`max`, `--max-body`, or the file's)
---| "canceled" # the response finished before the body was read
---| "disk full" # the file system is full, or the user's disk quota is used up
---| "file too large" # the file passed the process's file size limit (`ulimit -f`)
---| "is a directory" # the path is a directory
---| "bad handshake" # the request is not a WebSocket upgrade
---| "unsupported version" # a WebSocket version other than 13
---| "too large" # a key, value or published message over its limit
---| "exists" # the key is present
---| "not a number" # `incr` of a value that is not a number
---| "not a list" # a list call on a value that is not a list
---| "is a list" # `get` of a list
---| "changed" # the value was not the expected one
---| "queue full" # a worker that fell behind dropped its copy (the others got theirs)
---| string # "system error (errno N)"

---Close reasons given to `on_close`.
---@alias hotsock.CloseReason "peer closed"|"closed"|"idle timeout"|"reset"|"frame too large"|"negative length"|"line too long"|"handler error"|"shutdown"|string

-- ---------------------------------------------------------------------------------------
-- The module: local hotsock = require "hotsock"
-- ---------------------------------------------------------------------------------------

---@class hotsock
---@field version string the server's version, e.g. `"0.1.0"`
---@field shared hotsock.shared the default shared dictionary ("default"), the same in every worker
---@field json hotsock.json JSON encode and decode
local hotsock = {}

---The shared dictionary `name` of `--shared NAME=SIZE` (or `shared = { NAME = "64m" }` in a
---config file). Raises when the server has no such dictionary.
---@param name string
---@return hotsock.shared
function hotsock.dict(name) end

---Writes one log line at `level`, prefixed with the calling script's file:line. The other
---arguments are converted with `tostring` and joined with spaces.
---@param level hotsock.LogLevel
---@param ... any
function hotsock.log(level, ...) end

---Runs `fn(timer)` once after `seconds`. The timer belongs to the script version whose code
---created it.
---@param seconds number
---@param fn fun(timer: hotsock.Timer)
---@return hotsock.Timer
function hotsock.after(seconds, fn) end

---Runs `fn(timer)` every `seconds` until cancelled (a timer started by a script's top level
---stops when that version is replaced by a reload).
---@param seconds number
---@param fn fun(timer: hotsock.Timer)
---@return hotsock.Timer
function hotsock.every(seconds, fn) end

---Wall-clock seconds (the loop's cached time, sub-second precision).
---@return number
function hotsock.now() end

---Monotonic seconds, for measuring durations.
---@return number
function hotsock.monotonic() end

---Open connections in this process.
---@return integer
function hotsock.connections() end

---A new upload file: checks `name` is a plain file name, creates `dir` if needed and opens a
---temporary file there. Commit it to make `dir/name` appear atomically.
---@param dir string
---@param name string
---@return hotsock.File|nil file
---@return string? err why not (a refused name, a system error)
function hotsock.create_file(dir, name) end

---Whether `name` is acceptable as an upload file name (not empty, `.`, `..`, no `/`, `\` or
---NUL, at most 255 bytes, UTF-8, not our temporary prefix).
---@param name string
---@return true|nil ok
---@return string? reason
function hotsock.check_filename(name) end

---Calls `fn(msg, channel)` in this worker for every message published on `channel` by any
---worker of the server (this one included), in each publisher's order, from the event loop
---(never inside `publish`). A subscription made by a script's top level belongs to that
---version: it starts receiving once the version is published and is cancelled when a reload
---replaces it. Others last until `cancel()` or until their version is gone. An error in `fn`
---is logged and does not stop the other subscribers. Raises for a channel that is not 1 to
---255 bytes.
---@param channel string
---@param fn fun(msg: string, channel: string)
---@return hotsock.Subscription
function hotsock.subscribe(channel, fn) end

---Queues `msg` for every worker with a subscriber to `channel`, this one included, and
---returns at once (it never waits for a subscriber). `"too large"`: over `--max-publish`
---(64 KiB by default), nothing was sent. `"queue full"`: a worker that fell behind dropped its
---copy (counted in `hotsock stats`); the other workers got theirs, so do not resend blindly.
---@param channel string
---@param msg string
---@return true|nil ok
---@return string? err `"too large"` or `"queue full"`
function hotsock.publish(channel, msg) end

---This worker's number: 1 to `hotsock.workers()`; 1 in a single process; 0 in the master
---process, which runs a script's top level to check it but serves nothing.
---@return integer
function hotsock.worker() end

---How many workers the server runs (1 for a single process).
---@return integer
function hotsock.workers() end

---The open connections and WebSockets of this worker, as a fresh array: those of the calling
---script, or of every script called `script_name`. HTTP connections are not listed.
---@param script_name? string
---@return (hotsock.Conn|hotsock.WebSocket)[]
function hotsock.conns(script_name) end

---Queues `data` on every open connection and WebSocket of the calling script in this worker,
---but `except`: raw bytes on a connection, one message on a WebSocket (text when `data` is
---UTF-8, else binary). One whose output is full is skipped. Returns how many it reached.
---@param data string
---@param except? hotsock.Conn|hotsock.WebSocket
---@return integer reached
function hotsock.broadcast(data, except) end

---Waits `seconds` (the handler's coroutine yields to the loop; other connections run
---meanwhile). Only where a handler may wait: not in `on_accept`, `stream_body`, `on_upgrade`,
---`on_reload` or a script's top level, nor in a coroutine of the script's own.
---@param seconds number
function hotsock.sleep(seconds) end

---Runs `fn(...)` now in a coroutine of its own; returns at its first wait (or its end) a
---task, which `task:wait()` joins. Its errors are logged with file:line, and kept for
---`task:wait`. (It returned `true` before; a task is truthy too.)
---@param fn fun(...): ...
---@param ... any
---@return hotsock.Task
function hotsock.spawn(fn, ...) end

---Options of `hotsock.connect`.
---@class hotsock.ConnectOptions
---@field timeout? number seconds for resolving and connecting together (default 10)
---@field framing? string|table the framing `conn:receive()` without a pattern uses (default `"raw"`)
---@field proxy? hotsock.Conn an inbound conn whose client is passed on: a PROXY v2 header with
---its addresses (its own PROXY header's, or its socket's) goes first; never a pooled conn
---@field verify? boolean tls:// only: check the server's certificate chain and name (default true)
---@field ca? string tls:// only: PEM file of trusted certificates (default: the system store)
---@field sni? string tls:// only: the server name sent and checked (default: the URL's host)

---Opens an outbound connection: `tcp://HOST:PORT` (HOST a name, an IPv4 literal or a
---bracketed IPv6 literal; names are resolved without blocking, /etc/hosts first, every
---address tried in order), `tls://HOST:PORT` (the same, then a TLS handshake, verified by
---default: a failure returns nil, `"certificate verify failed: REASON"` or
---`"tls handshake failed: REASON"`) or `unix:/path`. Returns the same conn object as an accepted one
---(read it with `conn:receive`; it runs no callbacks), or nil and `"timeout"`,
---`"connection refused"`, `"no such host"`, `"not found"`, `"network unreachable"`,
---`"host unreachable"`, `"closed"` (the client of the handler left meanwhile), ... A conn kept
---with `conn:keepalive` for the same URL is taken back without waiting. A conn the script
---lets go of is closed when collected. Waits: only where a handler may wait.
---@param url string
---@param opts? hotsock.ConnectOptions
---@return hotsock.Conn|nil conn
---@return string? err
function hotsock.connect(url, opts) end

---Looks a host name up without blocking (/etc/hosts first; `localhost` is always the
---loopback). family: `"inet"` or 4, `"inet6"` or 6, or any. Returns the address texts in
---order, or nil, `"no such host"` (or `"timeout"`).
---@param name string
---@param family? "inet"|"inet6"|"any"|4|6
---@return string[]|nil addresses
---@return string? err
function hotsock.resolve(name, family) end

---The response head at the front of `buf`, by the core's parser (core/http_response.c), for
---HTTP clients written in Lua such as `hotsock.http_client`. `last_len`: `#buf` of the previous
---call that returned 0 for the same grown buffer (so only new bytes are scanned); `head`: the
---request was HEAD. Returns the head's length and the response (the body starts at
---`buf:sub(n + 1)`), or 0 when the head is incomplete, or nil and a reason when it is malformed
---(`"bare LF"`, `"bad status line"`, `"conflicting content-length"`, ...).
---@param buf string
---@param last_len? integer
---@param head? boolean
---@return integer|nil n
---@return hotsock.ParsedResponse|string|nil res_or_err
function hotsock.parse_response(buf, last_len, head) end

---@class hotsock.ParsedResponse
---@field status integer 100..999
---@field reason string the reason phrase, possibly empty
---@field version string "1.0", "1.1"
---@field headers table<string, string> lowercase names; repeated fields joined with ", "
---@field body "none"|"length"|"chunked"|"close" how the body after the head is delimited
---@field length? integer Content-Length, when there is one
---@field keep_alive boolean the connection may carry another request after the body

---Opens an outbound datagram socket: `udp://HOST:PORT` (a name is resolved without
---blocking, which waits) or `unixgram:/path` (the socket autobinds an abstract name, `@` and
---five hex digits, so the server can answer). Returns the socket, or nil and `"no such host"`,
---`"not found"`, `"connection refused"`, `"timeout"`.
---@param url string
---@return hotsock.UdpClient|nil sock
---@return string? err
function hotsock.udp(url) end

---A shared dictionary: `hotsock.shared` or `hotsock.dict(name)`. Every function also works
---with a colon (`dict:get(k)`). Runtime failures return nil and a token: `"too large"`,
---`"no memory"`, `"exists"`, `"not found"`, `"changed"`, `"not a number"`, `"not a list"`,
---`"is a list"`.
---@class hotsock.shared
local shared = {}

---@alias hotsock.SharedValue string|number|boolean

---The value of `key`, or nil when missing or expired (`nil, "is a list"` for a list).
---@param key string
---@return hotsock.SharedValue|nil value
---@return string? err
function shared.get(key) end

---Sets `key` (a nil value deletes it), expiring after `ttl` seconds (0 or none: never),
---evicting expired then least recently used entries when the dictionary is full.
---@param key string
---@param value hotsock.SharedValue|nil
---@param ttl? number
---@return true|nil ok
---@return string? err `"too large"`, `"no memory"`
function shared.set(key, value, ttl) end

---As `set`, but never evicts: `nil, "no memory"` when it does not fit.
---@param key string
---@param value hotsock.SharedValue|nil
---@param ttl? number
---@return true|nil ok
---@return string? err
function shared.safe_set(key, value, ttl) end

---Sets `key` only when it is absent (else `nil, "exists"`).
---@param key string
---@param value hotsock.SharedValue
---@param ttl? number
---@return true|nil ok
---@return string? err
function shared.add(key, value, ttl) end

---As `add`, but never evicts.
---@param key string
---@param value hotsock.SharedValue
---@param ttl? number
---@return true|nil ok
---@return string? err
function shared.safe_add(key, value, ttl) end

---Sets `key` only when it is present (else `nil, "not found"`).
---@param key string
---@param value hotsock.SharedValue
---@param ttl? number
---@return true|nil ok
---@return string? err
function shared.replace(key, value, ttl) end

---Compare and set: when the value of `key` equals `old` (nil: absent) it becomes `new`
---(nil: deleted), else `nil, "changed"`.
---@param key string
---@param old hotsock.SharedValue|nil
---@param new hotsock.SharedValue|nil
---@param ttl? number
---@return true|nil ok
---@return string? err
function shared.cas(key, old, new, ttl) end

---Adds `n` to the number at `key` atomically, keeping its expiry; a missing key is created as
---`init + n` (init default 0) expiring after `ttl`.
---@param key string
---@param n number
---@param init? number
---@param ttl? number
---@return number|nil value the new value
---@return string? err `"not a number"`, `"no memory"`, ...
function shared.incr(key, n, init, ttl) end

---Deletes `key`.
---@param key string
---@return true
function shared.delete(key) end

---Seconds `key` has left (0: no expiry).
---@param key string
---@return number|nil ttl
---@return string? err `"not found"`
function shared.ttl(key) end

---Makes `key` expire `ttl` seconds from now (0: never).
---@param key string
---@param ttl number
---@return true|nil ok
---@return string? err `"not found"`
function shared.expire(key, ttl) end

---Removes every entry.
---@return true
function shared.flush_all() end

---Live keys, most recently used first; at most `max` (default 1024, 0: all).
---@param max? integer
---@return string[]
function shared.keys(max) end

---Pushes `value` at the head of the list at `key` (created when absent).
---@param key string
---@param value string|number
---@return integer|nil length
---@return string? err `"not a list"`, `"no memory"`, `"too large"`
function shared.lpush(key, value) end

---Pushes `value` at the tail of the list at `key` (created when absent).
---@param key string
---@param value string|number
---@return integer|nil length
---@return string? err
function shared.rpush(key, value) end

---Takes the head of the list at `key` (nil when empty or absent).
---@param key string
---@return string|number|nil value
---@return string? err `"not a list"`
function shared.lpop(key) end

---Takes the tail of the list at `key` (nil when empty or absent).
---@param key string
---@return string|number|nil value
---@return string? err `"not a list"`
function shared.rpop(key) end

---The length of the list at `key` (0 when absent).
---@param key string
---@return integer|nil length
---@return string? err `"not a list"`
function shared.llen(key) end

---Entries stored and the capacity in bytes.
---@return integer entries
---@return integer capacity
function shared.count() end

---Bytes not in use.
---@return integer
function shared.free_space() end

---The dictionary's name (`"default"` for `hotsock.shared`).
---@return string
function shared.name() end

---JSON (RFC 8259): a strict decoder and a compact encoder.
---@class hotsock.json
---@field null lightuserdata the value of JSON null
local json = {}

---Encodes `value` (keys sorted; `/` not escaped). Cycles, NaN, infinities, functions and
---invalid UTF-8 give `nil, "json: <why>"`.
---@param value any
---@return string|nil text
---@return string? err
function json.encode(value) end

---Decodes `text`: `null` becomes `json.null`, arrays come back marked as arrays.
---@param text string
---@return any value
---@return string? err `"json: <why> at byte N"`
function json.decode(text) end

---Marks `t` (or a new table) to encode as an array, even when empty.
---@param t? table
---@return table
function json.array(t) end

-- ---------------------------------------------------------------------------------------
-- Objects
-- ---------------------------------------------------------------------------------------

---A timer from `hotsock.after` / `hotsock.every`.
---@class hotsock.Timer
local Timer = {}

---Stops the timer; harmless when it already fired or was cancelled.
function Timer:cancel() end

---A subscription from `hotsock.subscribe`.
---@class hotsock.Subscription
local Subscription = {}

---Stops deliveries to the subscription. Returns true if it was live, false when it had been
---cancelled already.
---@return boolean
function Subscription:cancel() end

---A function run by `hotsock.spawn`. Its results (or error message) are kept until the task
---is garbage-collected; a task nobody keeps costs nothing once its function has ended.
---@class hotsock.Task
local Task = {}

---Waits until the function has ended (at once when it has): `true` and its return values;
---`nil` and its error message when it raised (the error is logged too); `nil, "timeout"`
---after `timeout` seconds (the function goes on; wait again later); `nil, "closed"` when it
---was dropped without ending (the server stopping) or the waiting handler's client left. Several calls may wait on one task: all
---resume. A waiting call: only where a handler may wait (not in `on_accept`, a script's top
---level...), and not from the task's own function.
---@param timeout? number seconds; 0 answers at once
---@return true|nil ok
---@return any ... the function's values, or the error message / `"timeout"` / `"closed"`
function Task:wait(timeout) end

---Whether the function has ended (returned, raised or was dropped). Never waits.
---@return boolean
function Task:done() end

---A file from `hotsock.create_file`. Garbage-collected or closed without `commit`, it leaves
---nothing behind.
---@class hotsock.File
local File = {}

---Appends `s` to the temporary file.
---@param s string
---@return true|nil ok
---@return string? err
function File:write(s) end

---fsync, rename into place, fsync the directory.
---@return integer|nil bytes
---@return string sha256_or_err the SHA-256 (hex) of the content, or the error
function File:commit() end

---Drops the temporary file.
function File:abort() end

---The temporary path (before commit) or the final one.
---@return string
function File:path() end

---Bytes written so far.
---@return integer
function File:size() end

---A TCP or Unix stream connection: the same object in every callback of one connection.
---Misuse raises; runtime failures return `nil, token`. Kept after its close, I/O methods
---return `nil, "closed"` and queries keep answering.
---@class hotsock.Conn
---@field ctx table per-connection state of the script (survives a reload's adoption)
local Conn = {}

---Queues each string (or number) in order.
---@param s string|number
---@param ... string|number
---@return true|nil ok
---@return "closed"|"output buffer full"|nil err
function Conn:send(s, ...) end

---Closes once queued output has gone (deferred inside a callback).
---@return true|nil ok
---@return "closed"|nil err
function Conn:close() end

---Closes at once, dropping unsent output (the peer sees a reset).
---@return true|nil ok
---@return "closed"|nil err
function Conn:abort() end

---Half-close: ends the sending side once the output queued so far is written (SHUT_WR; a
---TLS close_notify first); reading goes on until the peer's end. Later sends return
---`nil, "closed"`; the conn stays open until closed.
---@return true|nil ok
---@return "closed"|nil err
function Conn:shutdown() end

---`"127.0.0.1:50312"`, `"[::1]:50312"`, or the Unix path / `"unix"`. On a `?proxy`
---listener, the client the PROXY header names (the socket's peer after a LOCAL header).
---@return string
function Conn:peer() end

---The PROXY header the connection began with (`?proxy` listeners); nil on other listeners
---and once closed.
---@return hotsock.ProxyInfo|nil
function Conn:proxy() end

---What the TLS handshake of a `tls://` connection agreed on (`on_connect` runs only once
---it is done); nil for a plaintext or closed connection.
---@return hotsock.TlsInfo|nil
function Conn:tls() end

---A number unique within the process.
---@return integer
function Conn:id() end

---True once closing or closed.
---@return boolean
function Conn:is_closed() end

---Bytes queued and not yet sent.
---@return integer
function Conn:pending() end

---The script version (generation) this connection runs.
---@return integer
function Conn:generation() end

---Frames bytes from now on (including already buffered ones) with `spec`.
---@param spec hotsock.FramingSpec
---@return true|nil ok
---@return "closed"|nil err
function Conn:set_framing(spec) end

---The framing in force, as a canonical spec string.
---@return string|nil spec
---@return "closed"|nil err
function Conn:framing() end

---Stops reading on the script's behalf.
---@return true|nil ok
---@return "closed"|nil err
function Conn:pause() end

---Restarts reading after `pause`.
---@return true|nil ok
---@return "closed"|nil err
function Conn:resume() end

---Streams the payload of the next length/fixed frame to `file` (nil: discard) as it arrives,
---then calls `done(conn, bytes)` or `done(conn, nil, err)`. `max` overrides the frame limit.
---@param file hotsock.File|nil
---@param done fun(conn: hotsock.Conn, bytes: integer|nil, err: string|nil)
---@param max? integer
---@return true|nil ok
---@return string? err
function Conn:pipe_frame(file, done, max) end

---Waits for input on the conn: a number, exactly that many bytes; `"*l"`, a line (CR LF or LF
---stripped); `"*a"`, everything until the peer closes; none, the next message under the
---conn's framing. Returns the data, or nil, err, partial: err is `"closed"`, `"timeout"`,
---`"line too long"` or `"frame too large"`, partial the bytes consumed.
---@param pattern? integer|"*l"|"*a"
---@return string|nil data
---@return string? err
---@return string? partial
function Conn:receive(pattern) end

---Moves every byte read from this conn (those already buffered first) to `dst`'s output in C,
---with no script call per read, and waits until the pipe ends: while `dst` has more than the
---high-water mark (1 MiB) unsent, this conn is not read, until that falls to 256 KiB. Returns
---the bytes moved when this conn's peer closed (dst stays open: close it, or not), or nil,
---err, bytes: `"closed"` (dst closed or failed, or this conn was closed), `"connection reset"`,
---`"timeout"` (the `settimeout` time passed with no byte moved). While it pipes, a receive on
---this conn raises and its on_message is not called. Raises for a dst that is not a conn or is
---this conn, and while this conn already pipes or a receive waits on it.
---@param dst hotsock.Conn
---@return integer|nil bytes
---@return string? err
---@return integer? moved
function Conn:pipe(dst) end

---Puts a conn from `hotsock.connect` into this state's pool for its URL, for idle_s seconds
---(default 60; 0: until the peer closes it), at most pool_size per URL (default 30; the oldest
---goes). This object then answers nil, "closed"; the next `hotsock.connect` to the same URL
---takes the conn back. A kept conn that the peer closes leaves the pool. Returns true, or nil
---and `"closed"`, `"busy"` (a receive waits on it), `"unread data"` or `"tls upgraded"` (a conn
---`conn:tls_handshake` upgraded: a plain connect must not get it). A `tls://` conn is taken
---back only by a connect with the same `verify`, `ca` and `sni`. Raises on an accepted conn.
---@param idle_s? number
---@param pool_size? integer
---@return true|nil ok
---@return string? err
function Conn:keepalive(idle_s, pool_size) end

---Waits until the conn's unsent output is at its low-water mark (256 KiB) or under; at
---once when it is. Call it before each send of a write loop.
---@param timeout? number seconds (default: the `settimeout` value, or none)
---@return true|nil ok
---@return string? err `"closed"`, `"timeout"`
function Conn:flush(timeout) end

---Options of `conn:tls_handshake`: those of `hotsock.connect` for tls://.
---@class hotsock.TlsOptions
---@field verify? boolean check the server's certificate chain and name (default true)
---@field ca? string PEM file of trusted certificates (default: the system store)
---@field sni? string the server name sent and checked (default: the URL's host)

---STARTTLS: starts TLS as a client on a conn from `hotsock.connect` once its plaintext
---exchange is done, and waits for the handshake. Returns true, or nil and `"closed"`,
---`"busy"` (a receive waits on it), `"unread data"`, `"certificate verify failed: REASON"`,
---`"tls handshake failed: REASON"` (the conn is then closed). Raises on an accepted conn.
---@param opts? hotsock.TlsOptions
---@return true|nil ok
---@return string? err
function Conn:tls_handshake(opts) end

---Timeout in seconds for each later wait on this conn (nil or negative: none).
---@param seconds number|nil
---@return true
function Conn:settimeout(seconds) end

---A UDP socket, given to `on_datagram`.
---@class hotsock.UdpSocket
local UdpSocket = {}

---Sends one datagram (at most 65,507 bytes) to `peer` (`"1.2.3.4:5"`, `"[::1]:5"`, or for a
---`unixgram:` listener the client's `"/path"` or `"@name"`; `"unix"`, a client that bound no
---name, gives nil, `"no peer address"`).
---@param peer string
---@param data string
---@return true|nil ok
---@return string? err `"closed"` once a reload removed the socket's address; else e.g. when
---the socket buffer is full (UDP may drop)
function UdpSocket:send_to(peer, data) end

---The bound address as a URL (still answers once the socket is closed).
---@return string
function UdpSocket:url() end

---An outbound datagram socket from `hotsock.udp`, connected to one address.
---@class hotsock.UdpClient
local UdpClient = {}

---Sends one datagram (at most 65,507 bytes).
---@param data string
---@return true|nil ok
---@return string? err `"closed"`, `"connection refused"` (an earlier datagram found no one),
---`"buffer full"`
function UdpClient:send(data) end

---Waits for the next datagram, at most `timeout` seconds (or the `settimeout` value).
---@param timeout? number
---@return string|nil data
---@return string? err `"timeout"`, `"closed"`, `"connection refused"`
function UdpClient:receive(timeout) end

---Each later receive gives up after `seconds`; nil or negative: no limit.
---@param seconds? number
---@return true
function UdpClient:settimeout(seconds) end

---Frees the socket; a receive waiting on it in another coroutine returns nil, `"closed"`.
---@return true|nil ok
---@return string? err `"closed"` when it was closed already
function UdpClient:close() end

-- ---------------------------------------------------------------------------------------
-- HTTP (scripts with protocol = "http")
-- ---------------------------------------------------------------------------------------

---One HTTP request: plain fields plus two methods.
---The TLS parameters of an encrypted connection (`conn:tls()`, `req.tls`).
---@class hotsock.TlsInfo
---@field version "TLSv1.3"|"TLSv1.2"
---@field cipher string OpenSSL's name of the suite, e.g. `"TLS_AES_256_GCM_SHA384"`
---@field sni? string the server name the client asked for (absent without SNI)
---@field alpn? string the ALPN protocol agreed on (`"http/1.1"` for HTTP scripts)

---The PROXY header a connection of a `?proxy` listener began with (`conn:proxy()`,
---`req.proxy`).
---@class hotsock.ProxyInfo
---@field version 1|2
---@field command "proxy"|"local" `"local"`: a balancer's own connection (health check)
---@field source? string the client, `"203.0.113.7:40001"` (absent for `"local"`)
---@field destination? string the address the client connected to (absent for `"local"`)
---@field transport? "tcp"|"udp"
---@field tlvs {type: integer, value: string}[] every v2 TLV in order (empty for v1)
---@field alpn? string the ALPN TLV
---@field authority? string the authority TLV (the TLS server name the client sent)
---@field unique_id? string the unique-id TLV (HAProxy `proxy-v2-options unique-id`)
---@field netns? string the network namespace TLV
---@field ssl? hotsock.ProxySsl the SSL TLV (HAProxy `send-proxy-v2-ssl`)

---The SSL TLV of a PROXY v2 header: how the client reached the balancer.
---@class hotsock.ProxySsl
---@field ssl boolean the client connected over TLS
---@field client_cert boolean it presented a certificate
---@field verified boolean its certificate verified (or none was asked)
---@field version? string `"TLSv1.3"`
---@field cn? string the client certificate's common name
---@field cipher? string
---@field sig_alg? string
---@field key_alg? string

---@class hotsock.Request
---@field method string `"GET"`, as sent
---@field target string the request-target exactly as sent
---@field path string percent-decoded, dot segments resolved
---@field query string the raw query string (`""` when none)
---@field headers table<string, string> lowercased names; repeated fields joined with `", "`
---@field body string|nil the whole body (nil when `stream_body` chose streaming)
---@field version "1.1"|"1.0"
---@field peer string `"127.0.0.1:50312"`
---@field ip string the client address without the port: `"127.0.0.1"`, `"::1"`
---@field tls? hotsock.TlsInfo set when the request came over a `tls://` listener
---@field proxy? hotsock.ProxyInfo set on a `?proxy` listener (then peer and ip are its client's)
local Request = {}

---The first value of query parameter `name`, form-decoded; `""` for `?flag`; nil if absent.
---@param name string
---@return string|nil
function Request:query_param(name) end

---Streaming only: the body goes into `file` (nil drops it), then `done(bytes)` or
---`done(nil, err)` runs.
---@param file hotsock.File|nil
---@param done fun(bytes: integer|nil, err: string|nil)
---@param max? integer
---@return true|nil ok
---@return "body too large"|nil err
function Request:pipe_body(file, done, max) end

---Upgrades the request to a WebSocket (docs/websocket.md): checks the handshake, answers 101
---and returns the WebSocket. On a bad handshake the core answers 400 (`"bad handshake"`) or
---426 (`"unsupported version"`) itself. Raises when a response was started or on bad options.
---@param opts hotsock.WebSocketOptions
---@return hotsock.WebSocket|nil ws
---@return "bad handshake"|"unsupported version"|"closed"|nil err
function Request:websocket(opts) end

---@class hotsock.WebSocketOptions
---@field on_message? fun(ws: hotsock.WebSocket, data: string, kind: "text"|"binary") one whole message (cannot wait)
---@field handle? fun(ws: hotsock.WebSocket) instead of on_message: runs at once and may wait; messages queue for ws:receive; its end closes the WebSocket (1000, or 1011 after an error)
---@field on_close? fun(ws: hotsock.WebSocket, code: integer, reason: string) once, when it is gone
---@field protocols? string[] subprotocols, in the script's order of preference
---@field max_message? integer bytes of one message, fragments together (default 1 MiB)

---A WebSocket made by `req:websocket`.
---@class hotsock.WebSocket
---@field ctx table per-WebSocket state of the script (survives a reload's adoption)
local WebSocket = {}

---Sends a text message (must be UTF-8; raises otherwise).
---@param text string
---@return true|nil ok
---@return "closed"|"output buffer full"|nil err
function WebSocket:send(text) end

---Sends a binary message.
---@param data string
---@return true|nil ok
---@return "closed"|"output buffer full"|nil err
function WebSocket:send_binary(data) end

---Sends a ping carrying up to 125 bytes.
---@param data? string
---@return true|nil ok
---@return "closed"|nil err
function WebSocket:ping(data) end

---Starts the close handshake: code 1000-1003, 1007-1014 or 3000-4999 (default 1000), and a
---UTF-8 reason of at most 123 bytes.
---@param code? integer
---@param reason? string
---@return true|nil ok
---@return "closed"|nil err
function WebSocket:close(code, reason) end

---The next message of a WebSocket made with `handle`, waiting for it: data and kind; nil and
---"timeout" after `timeout` seconds (default: ws:settimeout's, else none); nil, "closed", the
---close code and reason once it has closed and every message was taken. Raises on a WebSocket
---made with on_message, or while another call receives on it.
---@param timeout? number seconds
---@return string|nil data
---@return "text"|"binary"|"timeout"|"closed" kind_or_err
---@return integer|nil code
---@return string|nil reason
function WebSocket:receive(timeout) end

---The default timeout of later ws:receive calls; nil or negative: none.
---@param seconds? number
---@return true
function WebSocket:settimeout(seconds) end

---Bytes queued and not yet sent.
---@return integer
function WebSocket:pending() end

---The client's address, `"127.0.0.1:50312"` (also once closed).
---@return string
function WebSocket:peer() end

---The connection's id.
---@return integer
function WebSocket:id() end

---Whether it is closing or closed.
---@return boolean
function WebSocket:is_closed() end

---The subprotocol agreed on, or nil.
---@return string|nil
function WebSocket:protocol() end

---The response to one request.
---@class hotsock.Response
local Response = {}

---Sets the status (200-599; default 200).
---@param code integer
---@return true|nil ok
---@return "closed"|nil err the client has gone
function Response:status(code) end

---Sets a response field (a list gives one line each; nil removes it).
---@param name string
---@param value string|string[]|nil
---@return true|nil ok
---@return "closed"|nil err the client has gone
function Response:header(name, value) end

---Sends the response with `Content-Length` and finishes it.
---@param body? string
---@return true|nil ok
---@return "closed"|"output buffer full"|nil err
function Response:send(body) end

---Streams a piece of the body (chunked on HTTP/1.1).
---@param chunk string
---@return true|nil ok
---@return "closed"|"output buffer full"|nil err
function Response:write(chunk) end

---Ends a streamed body.
---@return true|nil ok
---@return "closed"|nil err
function Response:finish() end

---Sends a file (conditional requests and ranges handled) and finishes. Files are cached for
---1 s per path (small ones in memory, others as an open descriptor): a change shows within a
---second (docs/http.md, "Static files: the file cache").
---@param path string
---@param opts? { root: string }
---@return true|nil ok
---@return "not found"|"is a directory"|"permission denied"|nil err
function Response:send_file(path, opts) end

---Core HTTP settings of a script, each in its unit.
---What `on_http_error` gets as `res`: records the answer to an error the core found.
---@class hotsock.ErrorResponse
local ErrorResponse = {}

---Adds a header field (not Content-Length, Transfer-Encoding or Connection).
---@param name string
---@param value string|number
---@return true
function ErrorResponse:header(name, value) end

---Sets the body; without a call the default text body goes out.
---@param body string
---@return true
function ErrorResponse:send(body) end

---@class hotsock.HttpSettings
---@field max_body? integer bytes of a body read whole (default 8 MiB)
---@field header_timeout? number seconds for a request head (default 10)
---@field body_timeout? number seconds without a body byte (default 30)
---@field keepalive_timeout? number seconds an idle keep-alive connection lives (default 60)
---@field allow_get_body? boolean accept a body on GET and HEAD (default false: 400)

-- ---------------------------------------------------------------------------------------
-- The handler table a script returns
-- ---------------------------------------------------------------------------------------

---The sandbox profile a script runs under, chosen with `--sandbox` or a service's `sandbox`
---(docs/sandbox.md): `"standard"` (default: no `os.exit`, bytecode, `debug` but
---`debug.traceback`, C modules outside `--allow-module`), `"strict"` (also no `io`,
---`os.execute`/`remove`/`rename`/`tmpname`/`getenv`, `loadfile`, `dofile`, `package`) or
---`"trusted"` (the whole library). In the first two a script's `_G` is its own environment and
---the libraries are read-only; the watchdog is on in all three.
---@alias hotsock.SandboxProfile "standard"|"strict"|"trusted"

---What a handler script returns. At least one callback must be present; an unknown `on_*`
---field is a load error. The table is read once, at load (through its metamethods, in
---protected mode): changing it later changes nothing; reload instead.
---@class hotsock.Handler
---@field name? string label for logs (default: the file's base name)
---@field listen? string|string[] URLs used when the command line gives none
---@field framing? hotsock.FramingSpec framing of TCP/Unix connections (default `"raw"`)
---@field protocol? "stream"|"http" `"http"`: the core speaks HTTP/1.x and calls `on_request`
---@field http? hotsock.HttpSettings HTTP settings (protocol = "http")
---@field stream_body? fun(req: hotsock.Request): boolean true: `on_request` runs before the body is read
---@field on_accept? fun(peer: string): boolean return false to refuse a peer before a connection is set up
---@field on_connect? fun(conn: hotsock.Conn) a connection is open
---@field on_message? fun(conn: hotsock.Conn, msg: string) one framed message
---@field on_close? fun(conn: hotsock.Conn, reason: hotsock.CloseReason) the connection is gone
---@field on_datagram? fun(sock: hotsock.UdpSocket, data: string, peer: string) one UDP datagram
---@field on_request? fun(req: hotsock.Request, res: hotsock.Response) one HTTP request
---@field on_upgrade? fun(conn: hotsock.Conn|hotsock.WebSocket): hotsock.WebSocketOptions|nil after a reload, offered each live connection and WebSocket of an older version (a WebSocket takes the callbacks of a returned table)
---@field on_reload? fun(old: hotsock.Handler) before this version is published, with the previous table
---@field on_http_error? fun(status: integer, req: hotsock.Request, res: hotsock.ErrorResponse) shapes the core's own error answers
---@field handle? fun(conn: hotsock.Conn) the whole connection in one coroutine (reads with `conn:receive`); it closes when this returns

---The second argument a script receives when loaded: `local opts, info = ...`
---@class hotsock.ScriptInfo
---@field generation integer 1 for the first load, +1 per successful reload
---@field path string the script's path as given

return hotsock
