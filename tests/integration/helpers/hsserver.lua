-- The integration specs' server helper is the handler test kit users get
-- (lua/hotsock/testkit.lua): one implementation, proven by every spec. This name stays for
-- the specs written before the kit.
return require "hotsock.testkit"
