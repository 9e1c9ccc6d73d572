-- auth has no settings of its own (JWT_SECRET is a server setting): any key
-- under plugin_config.auth is refused rather than ignored.
return {}
