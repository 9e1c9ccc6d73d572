/* settings.c - the settings in force and the server's life (settings.h). */
#include "base/settings.h"

struct config settings;
struct life life;
