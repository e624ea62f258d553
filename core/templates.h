/* The starter files of `hotsock new` (lua/templates/), embedded at build time by CMake
 * (cmake/embed_templates.cmake) as NUL-terminated text. NAME in them stands for the handler's
 * name. */
#ifndef HS_TEMPLATES_H
#define HS_TEMPLATES_H

extern const char hs_template_handler[];      /* lua/templates/handler.lua */
extern const char hs_template_handler_spec[]; /* lua/templates/handler_spec.lua */

#endif
