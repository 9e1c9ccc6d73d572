-- The reference server of the Socket.IO protocol suite, as parley scripts
-- (tests/integration/protocol.test.js runs the suite against it).
return { "reference" }
