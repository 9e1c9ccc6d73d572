-- The default behaviour, in the order its hooks run (at equal priority).
return { "auth", "validate", "chat", "messages", "admin" }
