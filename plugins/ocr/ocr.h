/* ocr.h -- the "ocr" provider: text and car ids read from a photo by a
 * tesseract process off the loop (plugins/ocr/README.md). */
#ifndef RT_OCR_H
#define RT_OCR_H
#include "integration.h"
#include "text.h"

extern const rt_plugin rt_plugin_ocr;

/* Creates the provider from its validated "ocr" section (defaults filled). */
int rt_ocr_new(const json_t *conf, rt_provider **out, char **err);

/* Car ids in OCR output: rt_text_cars after undoing what OCR gets wrong in
 * them (Cyrillic look-alikes such as З for 3, S/B/Z/G/O/I where the serial
 * must be digits, a character read twice), choosing by the check digit where
 * it is mandatory. Returns how many were stored (at most max). */
int rt_ocr_cars(const char *text, rt_text_car *out, int max);
#endif
