-- validate has no settings: any key under plugin_config.validate is refused
-- rather than ignored.
return {}
