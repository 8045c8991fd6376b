/* src/core/version.h - shunt's version, for --version and the capture's facts. */
#ifndef SHUNT_CORE_VERSION_H
#define SHUNT_CORE_VERSION_H

#define SHUNT_VERSION "0.2.0"

#endif
