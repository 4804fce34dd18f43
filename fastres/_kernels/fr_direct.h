/* Direct convolution for float and double (see fr_direct_impl.h). */
#ifndef FASTRES_DIRECT_H
#define FASTRES_DIRECT_H
#include <stddef.h>
#include <string.h>
#include "fr_common.h"
#include "fr_conv.h" /* fr_valid_range */

#define T float
#define IT int
#define S f
#define L 8
#include "fr_direct_impl.h"
#undef T
#undef IT
#undef S
#undef L

#define T double
#define IT long long
#define S d
#define L 4
#include "fr_direct_impl.h"
#undef T
#undef IT
#undef S
#undef L

#endif
