--[[
  Starts a tick whose pair lock is held elsewhere (Redlock over several lock nodes).
  Input:
    KEYS[1] pair hash      <prefix>:pair:<sessionId>:<backendId>
    KEYS[2] backend hash   <prefix>:backend:<backendId>
    ARGV[1] now (ms)
    ARGV[2] tick token (proves probe ownership when the tick finishes)
    ARGV[3] probe lease (ms): how long a probe claim lasts before another worker may take it over
    ARGV[4] ping retry delay (ms, jittered): next ping retry of a backend on its tool
    ARGV[5] '1' when the backend may switch between ping and its tool, else '0'
    ARGV[6] traffic window (ms): a pair that carried traffic within it is skipped; 0 = never
  Output: see includes/begin-tick.lua
]]
--- @include "begin-tick"
return begin_tick(KEYS[1], KEYS[2], tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6]))
