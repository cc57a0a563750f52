/* version: the one version string of sefl. Every program's --version, the
 * client's Hello.software and the man pages (help2man reads --version) take
 * it from here. */
#ifndef SEFL_VERSION_H
#define SEFL_VERSION_H

#define SEFL_VERSION "0.3.0"

#endif
