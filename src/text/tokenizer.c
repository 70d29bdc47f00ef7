/* tokenizer.c - Qwen2/Qwen3 byte-level BPE tokenizer (spec 4.1-4.2).
 *
 * Pipeline position: prompt text -> [this] -> token ids -> Qwen3 text encoder.
 *
 * Load: tokenizer.json is 11 MB, mostly model.vocab (151,643 entries) and
 * model.merges (151,387 pairs). jansson needs ~0.4 s for it, so a small strict
 * JSON scanner reads the file once: vocab and merges go straight into hash
 * tables, every other value is handed (as its byte span) to jansson.
 *
 * Encode (mirrors HF `tokenizers`):
 *   raw text --added-token split (leftmost-longest)--> segments
 *   segment --NFC--> --pre-tokenizer regex (isolated)--> pieces
 *   piece bytes --BPE by merge rank (min-heap, HF tie order)--> ids
 * BPE results are cached per call, keyed by the piece's bytes. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <utf8proc.h>

#include "../common/error.h"

#define TOK_MAX_ID (1 << 24)     /* ids above this are rejected (bounded id tables) */
#define TOK_CACHE_MAX_WORD 256   /* longer pieces are not cached */
#define JSON_MAX_DEPTH 256

/* GPT-2 regex, used for a ByteLevel pre-tokenizer with use_regex=true. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ----------------------------------------------------------- Unicode data
 *
 * HF `tokenizers` 0.23 matches the pre-tokenizer regex with Oniguruma, whose
 * property data is Unicode 16.0, and normalizes with unicode-normalization-
 * alignments, whose data is Unicode 9.0. PCRE2 and utf8proc carry whatever
 * Unicode version the system has, so the classes the Qwen2 pattern uses are
 * spelled out here, and NFC is fenced (nfc_barrier). The tables were checked
 * code point by code point against HF tokenizers 0.23.2 (every scalar value
 * for \p{L}, \p{N}, \s; NFC on 1.5 M probe strings). */

/* Oniguruma's Unicode \s: U+0009-000D, U+0085, Zs, Zl, Zp. */
static const uint32_t uni_space[][2] = {
    {0x9, 0xD},       {0x20, 0x20},     {0x85, 0x85},     {0xA0, 0xA0},     {0x1680, 0x1680},
    {0x2000, 0x200A}, {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
};

/* General_Category L (Lu Ll Lt Lm Lo), Unicode 16.0: what \p{L} matches in HF tokenizers (Oniguruma). */
static const uint32_t uni_letter[][2] = {
    {0x41, 0x5A}, {0x61, 0x7A}, {0xAA, 0xAA}, {0xB5, 0xB5}, {0xBA, 0xBA}, {0xC0, 0xD6}, {0xD8, 0xF6}, {0xF8, 0x2C1},
    {0x2C6, 0x2D1}, {0x2E0, 0x2E4}, {0x2EC, 0x2EC}, {0x2EE, 0x2EE}, {0x370, 0x374}, {0x376, 0x377}, {0x37A, 0x37D},
    {0x37F, 0x37F}, {0x386, 0x386}, {0x388, 0x38A}, {0x38C, 0x38C}, {0x38E, 0x3A1}, {0x3A3, 0x3F5}, {0x3F7, 0x481},
    {0x48A, 0x52F}, {0x531, 0x556}, {0x559, 0x559}, {0x560, 0x588}, {0x5D0, 0x5EA}, {0x5EF, 0x5F2}, {0x620, 0x64A},
    {0x66E, 0x66F}, {0x671, 0x6D3}, {0x6D5, 0x6D5}, {0x6E5, 0x6E6}, {0x6EE, 0x6EF}, {0x6FA, 0x6FC}, {0x6FF, 0x6FF},
    {0x710, 0x710}, {0x712, 0x72F}, {0x74D, 0x7A5}, {0x7B1, 0x7B1}, {0x7CA, 0x7EA}, {0x7F4, 0x7F5}, {0x7FA, 0x7FA},
    {0x800, 0x815}, {0x81A, 0x81A}, {0x824, 0x824}, {0x828, 0x828}, {0x840, 0x858}, {0x860, 0x86A}, {0x870, 0x887},
    {0x889, 0x88E}, {0x8A0, 0x8C9}, {0x904, 0x939}, {0x93D, 0x93D}, {0x950, 0x950}, {0x958, 0x961}, {0x971, 0x980},
    {0x985, 0x98C}, {0x98F, 0x990}, {0x993, 0x9A8}, {0x9AA, 0x9B0}, {0x9B2, 0x9B2}, {0x9B6, 0x9B9}, {0x9BD, 0x9BD},
    {0x9CE, 0x9CE}, {0x9DC, 0x9DD}, {0x9DF, 0x9E1}, {0x9F0, 0x9F1}, {0x9FC, 0x9FC}, {0xA05, 0xA0A}, {0xA0F, 0xA10},
    {0xA13, 0xA28}, {0xA2A, 0xA30}, {0xA32, 0xA33}, {0xA35, 0xA36}, {0xA38, 0xA39}, {0xA59, 0xA5C}, {0xA5E, 0xA5E},
    {0xA72, 0xA74}, {0xA85, 0xA8D}, {0xA8F, 0xA91}, {0xA93, 0xAA8}, {0xAAA, 0xAB0}, {0xAB2, 0xAB3}, {0xAB5, 0xAB9},
    {0xABD, 0xABD}, {0xAD0, 0xAD0}, {0xAE0, 0xAE1}, {0xAF9, 0xAF9}, {0xB05, 0xB0C}, {0xB0F, 0xB10}, {0xB13, 0xB28},
    {0xB2A, 0xB30}, {0xB32, 0xB33}, {0xB35, 0xB39}, {0xB3D, 0xB3D}, {0xB5C, 0xB5D}, {0xB5F, 0xB61}, {0xB71, 0xB71},
    {0xB83, 0xB83}, {0xB85, 0xB8A}, {0xB8E, 0xB90}, {0xB92, 0xB95}, {0xB99, 0xB9A}, {0xB9C, 0xB9C}, {0xB9E, 0xB9F},
    {0xBA3, 0xBA4}, {0xBA8, 0xBAA}, {0xBAE, 0xBB9}, {0xBD0, 0xBD0}, {0xC05, 0xC0C}, {0xC0E, 0xC10}, {0xC12, 0xC28},
    {0xC2A, 0xC39}, {0xC3D, 0xC3D}, {0xC58, 0xC5A}, {0xC5D, 0xC5D}, {0xC60, 0xC61}, {0xC80, 0xC80}, {0xC85, 0xC8C},
    {0xC8E, 0xC90}, {0xC92, 0xCA8}, {0xCAA, 0xCB3}, {0xCB5, 0xCB9}, {0xCBD, 0xCBD}, {0xCDD, 0xCDE}, {0xCE0, 0xCE1},
    {0xCF1, 0xCF2}, {0xD04, 0xD0C}, {0xD0E, 0xD10}, {0xD12, 0xD3A}, {0xD3D, 0xD3D}, {0xD4E, 0xD4E}, {0xD54, 0xD56},
    {0xD5F, 0xD61}, {0xD7A, 0xD7F}, {0xD85, 0xD96}, {0xD9A, 0xDB1}, {0xDB3, 0xDBB}, {0xDBD, 0xDBD}, {0xDC0, 0xDC6},
    {0xE01, 0xE30}, {0xE32, 0xE33}, {0xE40, 0xE46}, {0xE81, 0xE82}, {0xE84, 0xE84}, {0xE86, 0xE8A}, {0xE8C, 0xEA3},
    {0xEA5, 0xEA5}, {0xEA7, 0xEB0}, {0xEB2, 0xEB3}, {0xEBD, 0xEBD}, {0xEC0, 0xEC4}, {0xEC6, 0xEC6}, {0xEDC, 0xEDF},
    {0xF00, 0xF00}, {0xF40, 0xF47}, {0xF49, 0xF6C}, {0xF88, 0xF8C}, {0x1000, 0x102A}, {0x103F, 0x103F},
    {0x1050, 0x1055}, {0x105A, 0x105D}, {0x1061, 0x1061}, {0x1065, 0x1066}, {0x106E, 0x1070}, {0x1075, 0x1081},
    {0x108E, 0x108E}, {0x10A0, 0x10C5}, {0x10C7, 0x10C7}, {0x10CD, 0x10CD}, {0x10D0, 0x10FA}, {0x10FC, 0x1248},
    {0x124A, 0x124D}, {0x1250, 0x1256}, {0x1258, 0x1258}, {0x125A, 0x125D}, {0x1260, 0x1288}, {0x128A, 0x128D},
    {0x1290, 0x12B0}, {0x12B2, 0x12B5}, {0x12B8, 0x12BE}, {0x12C0, 0x12C0}, {0x12C2, 0x12C5}, {0x12C8, 0x12D6},
    {0x12D8, 0x1310}, {0x1312, 0x1315}, {0x1318, 0x135A}, {0x1380, 0x138F}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1401, 0x166C}, {0x166F, 0x167F}, {0x1681, 0x169A}, {0x16A0, 0x16EA}, {0x16F1, 0x16F8}, {0x1700, 0x1711},
    {0x171F, 0x1731}, {0x1740, 0x1751}, {0x1760, 0x176C}, {0x176E, 0x1770}, {0x1780, 0x17B3}, {0x17D7, 0x17D7},
    {0x17DC, 0x17DC}, {0x1820, 0x1878}, {0x1880, 0x1884}, {0x1887, 0x18A8}, {0x18AA, 0x18AA}, {0x18B0, 0x18F5},
    {0x1900, 0x191E}, {0x1950, 0x196D}, {0x1970, 0x1974}, {0x1980, 0x19AB}, {0x19B0, 0x19C9}, {0x1A00, 0x1A16},
    {0x1A20, 0x1A54}, {0x1AA7, 0x1AA7}, {0x1B05, 0x1B33}, {0x1B45, 0x1B4C}, {0x1B83, 0x1BA0}, {0x1BAE, 0x1BAF},
    {0x1BBA, 0x1BE5}, {0x1C00, 0x1C23}, {0x1C4D, 0x1C4F}, {0x1C5A, 0x1C7D}, {0x1C80, 0x1C8A}, {0x1C90, 0x1CBA},
    {0x1CBD, 0x1CBF}, {0x1CE9, 0x1CEC}, {0x1CEE, 0x1CF3}, {0x1CF5, 0x1CF6}, {0x1CFA, 0x1CFA}, {0x1D00, 0x1DBF},
    {0x1E00, 0x1F15}, {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59},
    {0x1F5B, 0x1F5B}, {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE},
    {0x1FC2, 0x1FC4}, {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4},
    {0x1FF6, 0x1FFC}, {0x2071, 0x2071}, {0x207F, 0x207F}, {0x2090, 0x209C}, {0x2102, 0x2102}, {0x2107, 0x2107},
    {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
    {0x212A, 0x212D}, {0x212F, 0x2139}, {0x213C, 0x213F}, {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184},
    {0x2C00, 0x2CE4}, {0x2CEB, 0x2CEE}, {0x2CF2, 0x2CF3}, {0x2D00, 0x2D25}, {0x2D27, 0x2D27}, {0x2D2D, 0x2D2D},
    {0x2D30, 0x2D67}, {0x2D6F, 0x2D6F}, {0x2D80, 0x2D96}, {0x2DA0, 0x2DA6}, {0x2DA8, 0x2DAE}, {0x2DB0, 0x2DB6},
    {0x2DB8, 0x2DBE}, {0x2DC0, 0x2DC6}, {0x2DC8, 0x2DCE}, {0x2DD0, 0x2DD6}, {0x2DD8, 0x2DDE}, {0x2E2F, 0x2E2F},
    {0x3005, 0x3006}, {0x3031, 0x3035}, {0x303B, 0x303C}, {0x3041, 0x3096}, {0x309D, 0x309F}, {0x30A1, 0x30FA},
    {0x30FC, 0x30FF}, {0x3105, 0x312F}, {0x3131, 0x318E}, {0x31A0, 0x31BF}, {0x31F0, 0x31FF}, {0x3400, 0x4DBF},
    {0x4E00, 0xA48C}, {0xA4D0, 0xA4FD}, {0xA500, 0xA60C}, {0xA610, 0xA61F}, {0xA62A, 0xA62B}, {0xA640, 0xA66E},
    {0xA67F, 0xA69D}, {0xA6A0, 0xA6E5}, {0xA717, 0xA71F}, {0xA722, 0xA788}, {0xA78B, 0xA7CD}, {0xA7D0, 0xA7D1},
    {0xA7D3, 0xA7D3}, {0xA7D5, 0xA7DC}, {0xA7F2, 0xA801}, {0xA803, 0xA805}, {0xA807, 0xA80A}, {0xA80C, 0xA822},
    {0xA840, 0xA873}, {0xA882, 0xA8B3}, {0xA8F2, 0xA8F7}, {0xA8FB, 0xA8FB}, {0xA8FD, 0xA8FE}, {0xA90A, 0xA925},
    {0xA930, 0xA946}, {0xA960, 0xA97C}, {0xA984, 0xA9B2}, {0xA9CF, 0xA9CF}, {0xA9E0, 0xA9E4}, {0xA9E6, 0xA9EF},
    {0xA9FA, 0xA9FE}, {0xAA00, 0xAA28}, {0xAA40, 0xAA42}, {0xAA44, 0xAA4B}, {0xAA60, 0xAA76}, {0xAA7A, 0xAA7A},
    {0xAA7E, 0xAAAF}, {0xAAB1, 0xAAB1}, {0xAAB5, 0xAAB6}, {0xAAB9, 0xAABD}, {0xAAC0, 0xAAC0}, {0xAAC2, 0xAAC2},
    {0xAADB, 0xAADD}, {0xAAE0, 0xAAEA}, {0xAAF2, 0xAAF4}, {0xAB01, 0xAB06}, {0xAB09, 0xAB0E}, {0xAB11, 0xAB16},
    {0xAB20, 0xAB26}, {0xAB28, 0xAB2E}, {0xAB30, 0xAB5A}, {0xAB5C, 0xAB69}, {0xAB70, 0xABE2}, {0xAC00, 0xD7A3},
    {0xD7B0, 0xD7C6}, {0xD7CB, 0xD7FB}, {0xF900, 0xFA6D}, {0xFA70, 0xFAD9}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17},
    {0xFB1D, 0xFB1D}, {0xFB1F, 0xFB28}, {0xFB2A, 0xFB36}, {0xFB38, 0xFB3C}, {0xFB3E, 0xFB3E}, {0xFB40, 0xFB41},
    {0xFB43, 0xFB44}, {0xFB46, 0xFBB1}, {0xFBD3, 0xFD3D}, {0xFD50, 0xFD8F}, {0xFD92, 0xFDC7}, {0xFDF0, 0xFDFB},
    {0xFE70, 0xFE74}, {0xFE76, 0xFEFC}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0xFF66, 0xFFBE}, {0xFFC2, 0xFFC7},
    {0xFFCA, 0xFFCF}, {0xFFD2, 0xFFD7}, {0xFFDA, 0xFFDC}, {0x10000, 0x1000B}, {0x1000D, 0x10026}, {0x10028, 0x1003A},
    {0x1003C, 0x1003D}, {0x1003F, 0x1004D}, {0x10050, 0x1005D}, {0x10080, 0x100FA}, {0x10280, 0x1029C},
    {0x102A0, 0x102D0}, {0x10300, 0x1031F}, {0x1032D, 0x10340}, {0x10342, 0x10349}, {0x10350, 0x10375},
    {0x10380, 0x1039D}, {0x103A0, 0x103C3}, {0x103C8, 0x103CF}, {0x10400, 0x1049D}, {0x104B0, 0x104D3},
    {0x104D8, 0x104FB}, {0x10500, 0x10527}, {0x10530, 0x10563}, {0x10570, 0x1057A}, {0x1057C, 0x1058A},
    {0x1058C, 0x10592}, {0x10594, 0x10595}, {0x10597, 0x105A1}, {0x105A3, 0x105B1}, {0x105B3, 0x105B9},
    {0x105BB, 0x105BC}, {0x105C0, 0x105F3}, {0x10600, 0x10736}, {0x10740, 0x10755}, {0x10760, 0x10767},
    {0x10780, 0x10785}, {0x10787, 0x107B0}, {0x107B2, 0x107BA}, {0x10800, 0x10805}, {0x10808, 0x10808},
    {0x1080A, 0x10835}, {0x10837, 0x10838}, {0x1083C, 0x1083C}, {0x1083F, 0x10855}, {0x10860, 0x10876},
    {0x10880, 0x1089E}, {0x108E0, 0x108F2}, {0x108F4, 0x108F5}, {0x10900, 0x10915}, {0x10920, 0x10939},
    {0x10980, 0x109B7}, {0x109BE, 0x109BF}, {0x10A00, 0x10A00}, {0x10A10, 0x10A13}, {0x10A15, 0x10A17},
    {0x10A19, 0x10A35}, {0x10A60, 0x10A7C}, {0x10A80, 0x10A9C}, {0x10AC0, 0x10AC7}, {0x10AC9, 0x10AE4},
    {0x10B00, 0x10B35}, {0x10B40, 0x10B55}, {0x10B60, 0x10B72}, {0x10B80, 0x10B91}, {0x10C00, 0x10C48},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x10D00, 0x10D23}, {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85},
    {0x10E80, 0x10EA9}, {0x10EB0, 0x10EB1}, {0x10EC2, 0x10EC4}, {0x10F00, 0x10F1C}, {0x10F27, 0x10F27},
    {0x10F30, 0x10F45}, {0x10F70, 0x10F81}, {0x10FB0, 0x10FC4}, {0x10FE0, 0x10FF6}, {0x11003, 0x11037},
    {0x11071, 0x11072}, {0x11075, 0x11075}, {0x11083, 0x110AF}, {0x110D0, 0x110E8}, {0x11103, 0x11126},
    {0x11144, 0x11144}, {0x11147, 0x11147}, {0x11150, 0x11172}, {0x11176, 0x11176}, {0x11183, 0x111B2},
    {0x111C1, 0x111C4}, {0x111DA, 0x111DA}, {0x111DC, 0x111DC}, {0x11200, 0x11211}, {0x11213, 0x1122B},
    {0x1123F, 0x11240}, {0x11280, 0x11286}, {0x11288, 0x11288}, {0x1128A, 0x1128D}, {0x1128F, 0x1129D},
    {0x1129F, 0x112A8}, {0x112B0, 0x112DE}, {0x11305, 0x1130C}, {0x1130F, 0x11310}, {0x11313, 0x11328},
    {0x1132A, 0x11330}, {0x11332, 0x11333}, {0x11335, 0x11339}, {0x1133D, 0x1133D}, {0x11350, 0x11350},
    {0x1135D, 0x11361}, {0x11380, 0x11389}, {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5},
    {0x113B7, 0x113B7}, {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11400, 0x11434}, {0x11447, 0x1144A},
    {0x1145F, 0x11461}, {0x11480, 0x114AF}, {0x114C4, 0x114C5}, {0x114C7, 0x114C7}, {0x11580, 0x115AE},
    {0x115D8, 0x115DB}, {0x11600, 0x1162F}, {0x11644, 0x11644}, {0x11680, 0x116AA}, {0x116B8, 0x116B8},
    {0x11700, 0x1171A}, {0x11740, 0x11746}, {0x11800, 0x1182B}, {0x118A0, 0x118DF}, {0x118FF, 0x11906},
    {0x11909, 0x11909}, {0x1190C, 0x11913}, {0x11915, 0x11916}, {0x11918, 0x1192F}, {0x1193F, 0x1193F},
    {0x11941, 0x11941}, {0x119A0, 0x119A7}, {0x119AA, 0x119D0}, {0x119E1, 0x119E1}, {0x119E3, 0x119E3},
    {0x11A00, 0x11A00}, {0x11A0B, 0x11A32}, {0x11A3A, 0x11A3A}, {0x11A50, 0x11A50}, {0x11A5C, 0x11A89},
    {0x11A9D, 0x11A9D}, {0x11AB0, 0x11AF8}, {0x11BC0, 0x11BE0}, {0x11C00, 0x11C08}, {0x11C0A, 0x11C2E},
    {0x11C40, 0x11C40}, {0x11C72, 0x11C8F}, {0x11D00, 0x11D06}, {0x11D08, 0x11D09}, {0x11D0B, 0x11D30},
    {0x11D46, 0x11D46}, {0x11D60, 0x11D65}, {0x11D67, 0x11D68}, {0x11D6A, 0x11D89}, {0x11D98, 0x11D98},
    {0x11EE0, 0x11EF2}, {0x11F02, 0x11F02}, {0x11F04, 0x11F10}, {0x11F12, 0x11F33}, {0x11FB0, 0x11FB0},
    {0x12000, 0x12399}, {0x12480, 0x12543}, {0x12F90, 0x12FF0}, {0x13000, 0x1342F}, {0x13441, 0x13446},
    {0x13460, 0x143FA}, {0x14400, 0x14646}, {0x16100, 0x1611D}, {0x16800, 0x16A38}, {0x16A40, 0x16A5E},
    {0x16A70, 0x16ABE}, {0x16AD0, 0x16AED}, {0x16B00, 0x16B2F}, {0x16B40, 0x16B43}, {0x16B63, 0x16B77},
    {0x16B7D, 0x16B8F}, {0x16D40, 0x16D6C}, {0x16E40, 0x16E7F}, {0x16F00, 0x16F4A}, {0x16F50, 0x16F50},
    {0x16F93, 0x16F9F}, {0x16FE0, 0x16FE1}, {0x16FE3, 0x16FE3}, {0x17000, 0x187F7}, {0x18800, 0x18CD5},
    {0x18CFF, 0x18D08}, {0x1AFF0, 0x1AFF3}, {0x1AFF5, 0x1AFFB}, {0x1AFFD, 0x1AFFE}, {0x1B000, 0x1B122},
    {0x1B132, 0x1B132}, {0x1B150, 0x1B152}, {0x1B155, 0x1B155}, {0x1B164, 0x1B167}, {0x1B170, 0x1B2FB},
    {0x1BC00, 0x1BC6A}, {0x1BC70, 0x1BC7C}, {0x1BC80, 0x1BC88}, {0x1BC90, 0x1BC99}, {0x1D400, 0x1D454},
    {0x1D456, 0x1D49C}, {0x1D49E, 0x1D49F}, {0x1D4A2, 0x1D4A2}, {0x1D4A5, 0x1D4A6}, {0x1D4A9, 0x1D4AC},
    {0x1D4AE, 0x1D4B9}, {0x1D4BB, 0x1D4BB}, {0x1D4BD, 0x1D4C3}, {0x1D4C5, 0x1D505}, {0x1D507, 0x1D50A},
    {0x1D50D, 0x1D514}, {0x1D516, 0x1D51C}, {0x1D51E, 0x1D539}, {0x1D53B, 0x1D53E}, {0x1D540, 0x1D544},
    {0x1D546, 0x1D546}, {0x1D54A, 0x1D550}, {0x1D552, 0x1D6A5}, {0x1D6A8, 0x1D6C0}, {0x1D6C2, 0x1D6DA},
    {0x1D6DC, 0x1D6FA}, {0x1D6FC, 0x1D714}, {0x1D716, 0x1D734}, {0x1D736, 0x1D74E}, {0x1D750, 0x1D76E},
    {0x1D770, 0x1D788}, {0x1D78A, 0x1D7A8}, {0x1D7AA, 0x1D7C2}, {0x1D7C4, 0x1D7CB}, {0x1DF00, 0x1DF1E},
    {0x1DF25, 0x1DF2A}, {0x1E030, 0x1E06D}, {0x1E100, 0x1E12C}, {0x1E137, 0x1E13D}, {0x1E14E, 0x1E14E},
    {0x1E290, 0x1E2AD}, {0x1E2C0, 0x1E2EB}, {0x1E4D0, 0x1E4EB}, {0x1E5D0, 0x1E5ED}, {0x1E5F0, 0x1E5F0},
    {0x1E7E0, 0x1E7E6}, {0x1E7E8, 0x1E7EB}, {0x1E7ED, 0x1E7EE}, {0x1E7F0, 0x1E7FE}, {0x1E800, 0x1E8C4},
    {0x1E900, 0x1E943}, {0x1E94B, 0x1E94B}, {0x1EE00, 0x1EE03}, {0x1EE05, 0x1EE1F}, {0x1EE21, 0x1EE22},
    {0x1EE24, 0x1EE24}, {0x1EE27, 0x1EE27}, {0x1EE29, 0x1EE32}, {0x1EE34, 0x1EE37}, {0x1EE39, 0x1EE39},
    {0x1EE3B, 0x1EE3B}, {0x1EE42, 0x1EE42}, {0x1EE47, 0x1EE47}, {0x1EE49, 0x1EE49}, {0x1EE4B, 0x1EE4B},
    {0x1EE4D, 0x1EE4F}, {0x1EE51, 0x1EE52}, {0x1EE54, 0x1EE54}, {0x1EE57, 0x1EE57}, {0x1EE59, 0x1EE59},
    {0x1EE5B, 0x1EE5B}, {0x1EE5D, 0x1EE5D}, {0x1EE5F, 0x1EE5F}, {0x1EE61, 0x1EE62}, {0x1EE64, 0x1EE64},
    {0x1EE67, 0x1EE6A}, {0x1EE6C, 0x1EE72}, {0x1EE74, 0x1EE77}, {0x1EE79, 0x1EE7C}, {0x1EE7E, 0x1EE7E},
    {0x1EE80, 0x1EE89}, {0x1EE8B, 0x1EE9B}, {0x1EEA1, 0x1EEA3}, {0x1EEA5, 0x1EEA9}, {0x1EEAB, 0x1EEBB},
    {0x20000, 0x2A6DF}, {0x2A700, 0x2B739}, {0x2B740, 0x2B81D}, {0x2B820, 0x2CEA1}, {0x2CEB0, 0x2EBE0},
    {0x2EBF0, 0x2EE5D}, {0x2F800, 0x2FA1D}, {0x30000, 0x3134A}, {0x31350, 0x323AF},
};

/* General_Category N (Nd Nl No), Unicode 16.0: \p{N}. */
static const uint32_t uni_number[][2] = {
    {0x30, 0x39}, {0xB2, 0xB3}, {0xB9, 0xB9}, {0xBC, 0xBE}, {0x660, 0x669}, {0x6F0, 0x6F9}, {0x7C0, 0x7C9},
    {0x966, 0x96F}, {0x9E6, 0x9EF}, {0x9F4, 0x9F9}, {0xA66, 0xA6F}, {0xAE6, 0xAEF}, {0xB66, 0xB6F}, {0xB72, 0xB77},
    {0xBE6, 0xBF2}, {0xC66, 0xC6F}, {0xC78, 0xC7E}, {0xCE6, 0xCEF}, {0xD58, 0xD5E}, {0xD66, 0xD78}, {0xDE6, 0xDEF},
    {0xE50, 0xE59}, {0xED0, 0xED9}, {0xF20, 0xF33}, {0x1040, 0x1049}, {0x1090, 0x1099}, {0x1369, 0x137C},
    {0x16EE, 0x16F0}, {0x17E0, 0x17E9}, {0x17F0, 0x17F9}, {0x1810, 0x1819}, {0x1946, 0x194F}, {0x19D0, 0x19DA},
    {0x1A80, 0x1A89}, {0x1A90, 0x1A99}, {0x1B50, 0x1B59}, {0x1BB0, 0x1BB9}, {0x1C40, 0x1C49}, {0x1C50, 0x1C59},
    {0x2070, 0x2070}, {0x2074, 0x2079}, {0x2080, 0x2089}, {0x2150, 0x2182}, {0x2185, 0x2189}, {0x2460, 0x249B},
    {0x24EA, 0x24FF}, {0x2776, 0x2793}, {0x2CFD, 0x2CFD}, {0x3007, 0x3007}, {0x3021, 0x3029}, {0x3038, 0x303A},
    {0x3192, 0x3195}, {0x3220, 0x3229}, {0x3248, 0x324F}, {0x3251, 0x325F}, {0x3280, 0x3289}, {0x32B1, 0x32BF},
    {0xA620, 0xA629}, {0xA6E6, 0xA6EF}, {0xA830, 0xA835}, {0xA8D0, 0xA8D9}, {0xA900, 0xA909}, {0xA9D0, 0xA9D9},
    {0xA9F0, 0xA9F9}, {0xAA50, 0xAA59}, {0xABF0, 0xABF9}, {0xFF10, 0xFF19}, {0x10107, 0x10133}, {0x10140, 0x10178},
    {0x1018A, 0x1018B}, {0x102E1, 0x102FB}, {0x10320, 0x10323}, {0x10341, 0x10341}, {0x1034A, 0x1034A},
    {0x103D1, 0x103D5}, {0x104A0, 0x104A9}, {0x10858, 0x1085F}, {0x10879, 0x1087F}, {0x108A7, 0x108AF},
    {0x108FB, 0x108FF}, {0x10916, 0x1091B}, {0x109BC, 0x109BD}, {0x109C0, 0x109CF}, {0x109D2, 0x109FF},
    {0x10A40, 0x10A48}, {0x10A7D, 0x10A7E}, {0x10A9D, 0x10A9F}, {0x10AEB, 0x10AEF}, {0x10B58, 0x10B5F},
    {0x10B78, 0x10B7F}, {0x10BA9, 0x10BAF}, {0x10CFA, 0x10CFF}, {0x10D30, 0x10D39}, {0x10D40, 0x10D49},
    {0x10E60, 0x10E7E}, {0x10F1D, 0x10F26}, {0x10F51, 0x10F54}, {0x10FC5, 0x10FCB}, {0x11052, 0x1106F},
    {0x110F0, 0x110F9}, {0x11136, 0x1113F}, {0x111D0, 0x111D9}, {0x111E1, 0x111F4}, {0x112F0, 0x112F9},
    {0x11450, 0x11459}, {0x114D0, 0x114D9}, {0x11650, 0x11659}, {0x116C0, 0x116C9}, {0x116D0, 0x116E3},
    {0x11730, 0x1173B}, {0x118E0, 0x118F2}, {0x11950, 0x11959}, {0x11BF0, 0x11BF9}, {0x11C50, 0x11C6C},
    {0x11D50, 0x11D59}, {0x11DA0, 0x11DA9}, {0x11F50, 0x11F59}, {0x11FC0, 0x11FD4}, {0x12400, 0x1246E},
    {0x16130, 0x16139}, {0x16A60, 0x16A69}, {0x16AC0, 0x16AC9}, {0x16B50, 0x16B59}, {0x16B5B, 0x16B61},
    {0x16D70, 0x16D79}, {0x16E80, 0x16E96}, {0x1CCF0, 0x1CCF9}, {0x1D2C0, 0x1D2D3}, {0x1D2E0, 0x1D2F3},
    {0x1D360, 0x1D378}, {0x1D7CE, 0x1D7FF}, {0x1E140, 0x1E149}, {0x1E2F0, 0x1E2F9}, {0x1E4F0, 0x1E4F9},
    {0x1E5F1, 0x1E5FA}, {0x1E8C7, 0x1E8CF}, {0x1E950, 0x1E959}, {0x1EC71, 0x1ECAB}, {0x1ECAD, 0x1ECAF},
    {0x1ECB1, 0x1ECB4}, {0x1ED01, 0x1ED2D}, {0x1ED2F, 0x1ED3D}, {0x1F100, 0x1F10C}, {0x1FBF0, 0x1FBF9},
};

/* Code points with a normalization role (canonical combining class, canonical
 * decomposition, or a component of a primary composite) only in Unicode > 9.0.
 * HF's NFC sees them as plain starters, so they are copied verbatim and the
 * text on either side is normalized on its own (see nfc_append). */
static const uint32_t nfc_barrier[][2] = {
    {0x7FD, 0x7FD}, {0x897, 0x89F}, {0x8CA, 0x8D3}, {0x9FE, 0x9FE}, {0xC3C, 0xC3C}, {0xD3B, 0xD3C}, {0xEBA, 0xEBA},
    {0x1715, 0x1715}, {0x1ABF, 0x1ADD}, {0x1AE0, 0x1AEB}, {0x1DF6, 0x1DFA}, {0xA82C, 0xA82C}, {0x105D2, 0x105D2},
    {0x105DA, 0x105DA}, {0x10D24, 0x10D27}, {0x10D69, 0x10D6D}, {0x10EAB, 0x10EAC}, {0x10EFA, 0x10EFB},
    {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85}, {0x11070, 0x11070}, {0x1133B, 0x1133B},
    {0x11382, 0x11382}, {0x11384, 0x11384}, {0x1138B, 0x1138B}, {0x11390, 0x11390}, {0x113B8, 0x113B8},
    {0x113BB, 0x113BB}, {0x113C2, 0x113C2}, {0x113C9, 0x113C9}, {0x113CE, 0x113D0}, {0x1145E, 0x1145E},
    {0x11839, 0x1183A}, {0x11930, 0x11930}, {0x11935, 0x11935}, {0x1193D, 0x1193E}, {0x11943, 0x11943},
    {0x119E0, 0x119E0}, {0x11A34, 0x11A34}, {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42},
    {0x11D44, 0x11D45}, {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x1611E, 0x16120}, {0x16129, 0x16129},
    {0x1612F, 0x1612F}, {0x16D63, 0x16D63}, {0x16D67, 0x16D67}, {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F},
    {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF}, {0x1E5EE, 0x1E5EF},
    {0x1E6E3, 0x1E6E3}, {0x1E6E6, 0x1E6E6}, {0x1E6EE, 0x1E6EF}, {0x1E6F5, 0x1E6F5},
};

#define N_RANGES(t) (sizeof(t) / sizeof((t)[0]))

static int in_ranges(const uint32_t (*r)[2], size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid][0])
            hi = mid;
        else if (cp > r[mid][1])
            lo = mid + 1;
        else
            return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------ buffers */

typedef struct {
    char *p;
    size_t n, cap;
} zbuf;

static int zbuf_reserve(zbuf *b, size_t extra) {
    if (b->cap - b->n >= extra) return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->n < extra) {
        if (cap > SIZE_MAX / 2) return zi_err("tokenizer: buffer too large");
        cap *= 2;
    }
    char *p = realloc(b->p, cap);
    if (!p) return zi_err("tokenizer: out of memory (%zu bytes)", cap);
    b->p = p;
    b->cap = cap;
    return 0;
}

static int zbuf_put(zbuf *b, const void *s, size_t n) {
    if (zbuf_reserve(b, n + 1)) return -1;
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
    return 0;
}

static int zbuf_putc(zbuf *b, char c) { return zbuf_put(b, &c, 1); }

typedef struct {
    int32_t *p;
    size_t n, cap;
} ibuf;

static int ibuf_push(ibuf *b, int32_t v) {
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        int32_t *p = realloc(b->p, cap * sizeof *p);
        if (!p) return zi_err("tokenizer: out of memory");
        b->p = p;
        b->cap = cap;
    }
    b->p[b->n++] = v;
    return 0;
}

/* --------------------------------------------------------------------- UTF-8 */

/* Length (1..4) of the well-formed UTF-8 sequence at s[0..n), or 0 when it is
 * ill-formed; then *bad = length of the maximal ill-formed prefix (>= 1), the
 * unit Rust's from_utf8_lossy replaces with one U+FFFD. */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *bad) {
    unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t need;
    unsigned lo = 0x80, hi = 0xBF;
    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F; /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        *bad = 1;
        return 0;
    }
    if (n < 2 || s[1] < lo || s[1] > hi) {
        *bad = 1;
        return 0;
    }
    for (size_t i = 2; i < need; i++)
        if (i >= n || s[i] < 0x80 || s[i] > 0xBF) {
            *bad = i;
            return 0;
        }
    return need;
}

/* Offset of the first ill-formed byte, or n when s[0..n) is valid UTF-8. */
static size_t utf8_valid_upto(const unsigned char *s, size_t n) {
    size_t i = 0, bad;
    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        size_t l = utf8_seq(s + i, n - i, &bad);
        if (!l) return i;
        i += l;
    }
    return n;
}

/* Decode one code point of valid UTF-8; returns its length. */
static size_t utf8_get(const unsigned char *s, uint32_t *cp) {
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) |
          (s[3] & 0x3F);
    return 4;
}

static size_t utf8_put(char *o, uint32_t cp) {
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xC0 | (cp >> 6));
        o[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | (cp >> 12));
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | (cp >> 18));
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Rust char::is_whitespace (Unicode White_Space). */
static int cp_is_space(uint32_t c) {
    return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

/* Letter, number or '_' (word character for single_word added tokens). */
static int cp_is_word(uint32_t c) {
    if (c == '_') return 1;
    utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)c);
    return (k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO) ||
           (k >= UTF8PROC_CATEGORY_ND && k <= UTF8PROC_CATEGORY_NO);
}

/* ------------------------------------------------------- GPT-2 byte alphabet */

/* Bytes 33..126, 161..172, 174..255 stand for themselves; the other 68 bytes
 * map in order to U+0100.. so that every byte is a printable character. */
static void bytelevel_tables(uint32_t b2u[256], int16_t u2b[324]) {
    int k = 0;
    for (int i = 0; i < 324; i++) u2b[i] = -1;
    for (int b = 0; b < 256; b++) {
        int self = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
        b2u[b] = self ? (uint32_t)b : (uint32_t)(256 + k++);
        u2b[b2u[b]] = (int16_t)b;
    }
}

/* ---------------------------------------------------------------- hash maps */

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch(p)
#else
#define PREFETCH(p) ((void)(p))
#endif

#define FNV_INIT 1469598103934665603ull

static uint64_t fnv_update(uint64_t h, const void *p, size_t n) {
    const unsigned char *s = p;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 1099511628211ull;
    return h;
}

static uint32_t hash_final(uint64_t h) {
    h ^= h >> 32;
    h *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(h >> 32) | 1; /* 0 marks an empty slot */
}

static uint32_t hash_bytes(const void *p, size_t n) { return hash_final(fnv_update(FNV_INIT, p, n)); }

static uint64_t hash_u64(uint64_t x) {
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

/* Open addressing, linear probing, load <= 0.6. */
static size_t table_cap(size_t n) {
    size_t cap = 64;
    while (cap * 3 < n * 5) cap *= 2;
    return cap;
}

/* byte string (stored in an arena by offset) -> int32 */
typedef struct {
    uint32_t h; /* 0: empty */
    uint32_t off, len;
    int32_t val;
} str_slot;

typedef struct {
    str_slot *slot;
    size_t mask, n;
} str_map;

static int smap_init(str_map *m, size_t expect) {
    size_t cap = table_cap(expect);
    m->slot = calloc(cap, sizeof *m->slot);
    if (!m->slot) return zi_err("tokenizer: out of memory");
    m->mask = cap - 1;
    m->n = 0;
    return 0;
}

/* The slot holding the key a[0..la) + b[0..lb) (b may be empty), or the empty
 * slot where it would go. h is hash_bytes of the whole key. */
static str_slot *smap_find2(const str_map *m, const char *arena, const void *a, size_t la, const void *b, size_t lb,
                            uint32_t h) {
    size_t i = h & m->mask;
    for (;;) {
        str_slot *s = &m->slot[i];
        if (!s->h) return s;
        if (s->h == h && s->len == la + lb && !memcmp(arena + s->off, a, la) &&
            (!lb || !memcmp(arena + s->off + la, b, lb)))
            return s;
        i = (i + 1) & m->mask;
    }
}

static str_slot *smap_find(const str_map *m, const char *arena, const void *key, size_t len, uint32_t h) {
    return smap_find2(m, arena, key, len, NULL, 0, h);
}

/* Make room for one more entry. */
static int smap_grow(str_map *m) {
    if ((m->n + 1) * 5 <= (m->mask + 1) * 3) return 0;
    size_t cap = (m->mask + 1) * 2;
    str_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return zi_err("tokenizer: out of memory");
    for (size_t i = 0; i <= m->mask; i++) {
        if (!m->slot[i].h) continue;
        size_t j = m->slot[i].h & (cap - 1);
        while (ns[j].h) j = (j + 1) & (cap - 1);
        ns[j] = m->slot[i];
    }
    free(m->slot);
    m->slot = ns;
    m->mask = cap - 1;
    return 0;
}

/* (left id, right id) -> merge rank and merged id */
typedef struct {
    uint64_t key; /* UINT64_MAX: empty */
    int32_t rank, new_id;
} merge_slot;

typedef struct {
    merge_slot *slot;
    size_t mask;
} merge_map;

static inline uint64_t merge_key(int32_t a, int32_t b) { return ((uint64_t)(uint32_t)a << 32) | (uint32_t)b; }

static merge_slot *mmap_find(const merge_map *m, uint64_t key) {
    size_t i = hash_u64(key) & m->mask;
    for (;;) {
        merge_slot *s = &m->slot[i];
        if (s->key == key || s->key == UINT64_MAX) return s;
        i = (i + 1) & m->mask;
    }
}

/* ---------------------------------------------------------------- tokenizer */

typedef struct {
    uint32_t str_off, str_len;     /* string as in tokenizer.json */
    uint32_t bytes_off, bytes_len; /* decoded bytes */
    uint8_t kind;                  /* 0: unused id, 1: vocab, 2: added token */
} tok_entry;

typedef struct {
    uint32_t off, len; /* content in strs */
    int32_t id;
    uint8_t normalized, lstrip, rstrip, single_word;
} added_tok;

struct zi_tokenizer {
    zbuf strs;          /* every token string and decoded byte string */
    str_map vocab;      /* model vocab: tokenizer.json string -> id */
    merge_map merges;
    tok_entry *ent;     /* [n_ids] */
    int32_t n_ids;
    int32_t byte_id[256]; /* id of each single-byte symbol */
    added_tok *added;   /* sorted by content length, longest first */
    int n_added;
    uint8_t first_raw[256], first_norm[256]; /* first bytes of added tokens per class */
    int has_norm_added, nfc, ignore_merges;
    pcre2_code *re;
    uint32_t b2u[256];
    int16_t u2b[324];
};

/* ------------------------------------------------------------ JSON scanner */

typedef struct {
    const char *s, *p, *e; /* file, cursor, end */
    const char *path;
    zbuf scratch;
} jscan;

static int js_fail(jscan *j, const char *at, const char *fmt, ...) ZI_PRINTF(3, 4);
static int js_fail(jscan *j, const char *at, const char *fmt, ...) {
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at >= j->e) return zi_err("%s: invalid JSON: unexpected end of file (truncated?) while %s", j->path, msg);
    int line = 1, col = 1;
    for (const char *q = j->s; q < at; q++) {
        if (*q == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)*q & 0xC0) != 0x80)
            col++;
    }
    return zi_err("%s: invalid JSON at line %d column %d: %s", j->path, line, col, msg);
}

static void js_ws(jscan *j) {
    while (j->p < j->e && (*j->p == ' ' || *j->p == '\n' || *j->p == '\r' || *j->p == '\t')) j->p++;
}

/* Skip whitespace and check the next character is c (consumed). */
static int js_expect(jscan *j, char c, const char *ctx) {
    js_ws(j);
    if (j->p >= j->e || *j->p != c) return js_fail(j, j->p, "expected '%c' %s", c, ctx);
    j->p++;
    return 0;
}

/* After a member/element: 1 if another follows (',' consumed), 0 at the closer. */
static int js_next(jscan *j, char closer, const char *ctx) {
    js_ws(j);
    if (j->p < j->e && *j->p == ',') {
        j->p++;
        return 1;
    }
    if (j->p < j->e && *j->p == closer) {
        j->p++;
        return 0;
    }
    return js_fail(j, j->p, "expected ',' or '%c' %s", closer, ctx);
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int js_hex4(jscan *j, const char *q, uint32_t *v) {
    *v = 0;
    for (int i = 0; i < 4; i++) {
        if (q + i >= j->e) return js_fail(j, j->e, "reading a \\u escape");
        int h = hexval(q[i]);
        if (h < 0) return js_fail(j, q + i, "invalid \\u escape");
        *v = *v << 4 | (uint32_t)h;
    }
    return 0;
}

/* Decode the string at the cursor (whitespace skipped) and append its bytes to out. */
static int js_string(jscan *j, zbuf *out, const char *ctx) {
    js_ws(j);
    if (j->p >= j->e || *j->p != '"') return js_fail(j, j->p, "expected a string %s", ctx);
    const char *p = j->p + 1;
    for (;;) {
        const char *q = p;
        int hi = 0;
        while (q < j->e && (unsigned char)*q >= 0x20 && *q != '"' && *q != '\\') hi |= (unsigned char)*q++;
        if (hi & 0x80) {
            size_t ok = utf8_valid_upto((const unsigned char *)p, (size_t)(q - p));
            if (ok != (size_t)(q - p)) return js_fail(j, p + ok, "invalid UTF-8 in string");
        }
        if (zbuf_put(out, p, (size_t)(q - p))) return -1;
        if (q >= j->e) return js_fail(j, j->e, "reading a string %s", ctx);
        if (*q == '"') {
            j->p = q + 1;
            return 0;
        }
        if (*q != '\\') return js_fail(j, q, "control character in string");
        if (q + 1 >= j->e) return js_fail(j, j->e, "reading a string %s", ctx);
        char c = q[1], buf[4];
        p = q + 2;
        switch (c) {
        case '"': case '\\': case '/': buf[0] = c; break;
        case 'b': buf[0] = '\b'; break;
        case 'f': buf[0] = '\f'; break;
        case 'n': buf[0] = '\n'; break;
        case 'r': buf[0] = '\r'; break;
        case 't': buf[0] = '\t'; break;
        case 'u': {
            uint32_t v, w;
            if (js_hex4(j, p, &v)) return -1;
            p += 4;
            if (v >= 0xDC00 && v <= 0xDFFF) return js_fail(j, q, "lone low surrogate in \\u escape");
            if (v >= 0xD800 && v <= 0xDBFF) {
                if (p + 1 >= j->e || p[0] != '\\' || p[1] != 'u')
                    return js_fail(j, q, "high surrogate without a low surrogate in \\u escape");
                if (js_hex4(j, p + 2, &w)) return -1;
                if (w < 0xDC00 || w > 0xDFFF) return js_fail(j, p, "invalid low surrogate in \\u escape");
                v = 0x10000 + ((v - 0xD800) << 10) + (w - 0xDC00);
                p += 6;
            }
            if (zbuf_put(out, buf, utf8_put(buf, v))) return -1;
            continue;
        }
        default: return js_fail(j, q, "invalid escape '\\%c'", c);
        }
        if (zbuf_put(out, buf, 1)) return -1;
    }
}

/* Number at the cursor; *is_int / *iv for plain integers (iv saturates). */
static int js_number(jscan *j, int *is_int, long long *iv) {
    js_ws(j);
    const char *p = j->p, *e = j->e;
    int neg = 0;
    long long v = 0;
    *is_int = 1;
    if (p < e && *p == '-') neg = 1, p++;
    if (p >= e) return js_fail(j, p, "reading a number");
    if (*p == '0')
        p++;
    else if (*p >= '1' && *p <= '9') {
        while (p < e && *p >= '0' && *p <= '9') {
            v = v < LLONG_MAX / 10 - 10 ? v * 10 + (*p - '0') : LLONG_MAX / 10;
            p++;
        }
    } else
        return js_fail(j, p, "invalid value");
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return js_fail(j, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
        *is_int = 0;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return js_fail(j, p, "invalid number");
        while (p < e && *p >= '0' && *p <= '9') p++;
        *is_int = 0;
    }
    *iv = neg ? -v : v;
    j->p = p;
    return 0;
}

/* Validate and skip any value. */
static int js_skip(jscan *j, int depth) {
    js_ws(j);
    if (j->p >= j->e) return js_fail(j, j->e, "reading a value");
    if (depth > JSON_MAX_DEPTH) return js_fail(j, j->p, "nesting deeper than %d", JSON_MAX_DEPTH);
    char c = *j->p;
    if (c == '"') {
        j->scratch.n = 0;
        return js_string(j, &j->scratch, "");
    }
    if (c == '{' || c == '[') {
        char closer = c == '{' ? '}' : ']';
        j->p++;
        js_ws(j);
        if (j->p < j->e && *j->p == closer) {
            j->p++;
            return 0;
        }
        int more;
        do {
            if (c == '{') {
                j->scratch.n = 0;
                if (js_string(j, &j->scratch, "as object key") || js_expect(j, ':', "after an object key"))
                    return -1;
            }
            if (js_skip(j, depth + 1)) return -1;
            more = js_next(j, closer, c == '{' ? "in an object" : "in an array");
            if (more < 0) return -1;
        } while (more);
        return 0;
    }
    static const char *const words[] = {"true", "false", "null"};
    for (int i = 0; i < 3; i++) {
        size_t l = strlen(words[i]);
        if (c == words[i][0]) {
            if ((size_t)(j->e - j->p) < l || memcmp(j->p, words[i], l)) return js_fail(j, j->p, "invalid value");
            j->p += l;
            return 0;
        }
    }
    int is_int;
    long long v;
    return js_number(j, &is_int, &v);
}

/* Skip a value and hand its text to jansson; stored as obj[key]. */
static int js_value_to_jansson(jscan *j, json_t *obj, const char *key) {
    js_ws(j);
    const char *start = j->p;
    if (js_skip(j, 1)) return -1;
    json_error_t e;
    json_t *v = json_loadb(start, (size_t)(j->p - start), JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);
    if (!v) return js_fail(j, start, "key \"%s\": %s", key, e.text);
    json_object_set_new(obj, key, v);
    return 0;
}

/* ------------------------------------------------------------------ loading */

typedef struct {
    int32_t id;
    uint32_t off, len;
} vocab_item;

typedef struct {
    uint32_t a_off, a_len, b_off, b_len;
} merge_item;

typedef struct {
    jscan j;
    zi_tokenizer *t;
    vocab_item *vocab;
    size_t n_vocab, cap_vocab;
    int has_vocab, has_merges;
    zbuf mstr; /* merge token strings */
    merge_item *merges;
    size_t n_merges, cap_merges;
    json_t *top, *model; /* everything else, via jansson */
} loader;

static int load_vocab(loader *L) {
    jscan *j = &L->j;
    zi_tokenizer *t = L->t;
    if (L->has_vocab) return js_fail(j, j->p, "duplicate key \"vocab\" in model");
    L->has_vocab = 1;
    if (js_expect(j, '{', "for model.vocab")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
        return 0;
    }
    int more;
    do {
        uint32_t off = (uint32_t)t->strs.n;
        if (js_string(j, &t->strs, "as a vocab token")) return -1;
        uint32_t len = (uint32_t)(t->strs.n - off);
        if (zbuf_putc(&t->strs, 0)) return -1;
        if (js_expect(j, ':', "after a vocab token")) return -1;
        int is_int;
        long long id;
        js_ws(j);
        const char *num = j->p;
        if (js_number(j, &is_int, &id)) return -1;
        if (!is_int || id < 0 || id >= TOK_MAX_ID)
            return js_fail(j, num, "vocab token \"%s\": id must be an integer in [0, %d)", t->strs.p + off,
                           TOK_MAX_ID);
        if (L->n_vocab == L->cap_vocab) {
            size_t cap = L->cap_vocab ? L->cap_vocab * 2 : 4096;
            vocab_item *v = realloc(L->vocab, cap * sizeof *v);
            if (!v) return zi_err("tokenizer: out of memory");
            L->vocab = v;
            L->cap_vocab = cap;
        }
        L->vocab[L->n_vocab++] = (vocab_item){(int32_t)id, off, len};
        more = js_next(j, '}', "in model.vocab");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_merges(loader *L) {
    jscan *j = &L->j;
    if (L->has_merges) return js_fail(j, j->p, "duplicate key \"merges\" in model");
    L->has_merges = 1;
    if (js_expect(j, '[', "for model.merges")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == ']') {
        j->p++;
        return 0;
    }
    int more;
    do {
        merge_item m;
        js_ws(j);
        const char *at = j->p;
        if (j->p < j->e && *j->p == '"') { /* legacy "a b" */
            uint32_t off = (uint32_t)L->mstr.n;
            if (js_string(j, &L->mstr, "in model.merges")) return -1;
            uint32_t len = (uint32_t)(L->mstr.n - off);
            const char *sp = memchr(L->mstr.p + off, ' ', len);
            if (!sp || memchr(sp + 1, ' ', len - (uint32_t)(sp + 1 - (L->mstr.p + off))))
                return js_fail(j, at, "merge %zu: expected two tokens separated by one space", L->n_merges);
            m.a_off = off;
            m.a_len = (uint32_t)(sp - (L->mstr.p + off));
            m.b_off = m.a_off + m.a_len + 1;
            m.b_len = len - m.a_len - 1;
        } else if (j->p < j->e && *j->p == '[') { /* ["a", "b"] */
            j->p++;
            m.a_off = (uint32_t)L->mstr.n;
            if (js_string(j, &L->mstr, "as the first token of a merge")) return -1;
            m.a_len = (uint32_t)(L->mstr.n - m.a_off);
            if (js_expect(j, ',', "between the two tokens of a merge")) return -1;
            m.b_off = (uint32_t)L->mstr.n;
            if (js_string(j, &L->mstr, "as the second token of a merge")) return -1;
            m.b_len = (uint32_t)(L->mstr.n - m.b_off);
            if (js_expect(j, ']', "after the two tokens of a merge")) return -1;
        } else
            return js_fail(j, at, "merge %zu: expected a string \"a b\" or an array [\"a\", \"b\"]", L->n_merges);
        if (L->n_merges == L->cap_merges) {
            size_t cap = L->cap_merges ? L->cap_merges * 2 : 4096;
            merge_item *v = realloc(L->merges, cap * sizeof *v);
            if (!v) return zi_err("tokenizer: out of memory");
            L->merges = v;
            L->cap_merges = cap;
        }
        L->merges[L->n_merges++] = m;
        more = js_next(j, ']', "in model.merges");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_model(loader *L) {
    jscan *j = &L->j;
    if (L->model) return js_fail(j, j->p, "duplicate key \"model\"");
    L->model = json_object();
    if (js_expect(j, '{', "for \"model\"")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
        return 0;
    }
    int more;
    do {
        j->scratch.n = 0;
        if (js_string(j, &j->scratch, "as a key of \"model\"") || zbuf_putc(&j->scratch, 0)) return -1;
        if (js_expect(j, ':', "after a key")) return -1;
        if (!strcmp(j->scratch.p, "vocab")) {
            if (load_vocab(L)) return -1;
        } else if (!strcmp(j->scratch.p, "merges")) {
            if (load_merges(L)) return -1;
        } else {
            char key[64];
            snprintf(key, sizeof key, "%s", j->scratch.p);
            if (js_value_to_jansson(j, L->model, key)) return -1;
        }
        more = js_next(j, '}', "in \"model\"");
        if (more < 0) return -1;
    } while (more);
    return 0;
}

static int load_json(loader *L) {
    jscan *j = &L->j;
    L->top = json_object();
    if (js_expect(j, '{', "at the start of the file")) return -1;
    js_ws(j);
    if (j->p < j->e && *j->p == '}') {
        j->p++;
    } else {
        int more;
        do {
            j->scratch.n = 0;
            if (js_string(j, &j->scratch, "as a top-level key") || zbuf_putc(&j->scratch, 0)) return -1;
            if (js_expect(j, ':', "after a key")) return -1;
            if (!strcmp(j->scratch.p, "model")) {
                if (load_model(L)) return -1;
            } else {
                char key[64];
                snprintf(key, sizeof key, "%s", j->scratch.p);
                if (js_value_to_jansson(j, L->top, key)) return -1;
            }
            more = js_next(j, '}', "in the top-level object");
            if (more < 0) return -1;
        } while (more);
    }
    js_ws(j);
    if (j->p != j->e) return js_fail(j, j->p, "unexpected data after the top-level object");
    return 0;
}

static const char *json_type_str(const json_t *o) {
    return json_string_value(json_object_get(o, "type"));
}

/* normalizer: null, NFC, or a Sequence of those. */
static int load_normalizer(zi_tokenizer *t, const json_t *n, const char *path) {
    if (!n || json_is_null(n)) return 0;
    const char *type = json_type_str(n);
    if (type && !strcmp(type, "NFC")) {
        t->nfc = 1;
        return 0;
    }
    if (type && !strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers"), *e;
        size_t i;
        if (!json_is_array(list)) return zi_err("%s: normalizer Sequence without \"normalizers\"", path);
        json_array_foreach(list, i, e) if (load_normalizer(t, e, path)) return -1;
        return 0;
    }
    return zi_err("%s: unsupported normalizer type \"%s\" (only NFC is implemented)", path, type ? type : "?");
}

/* Append the ranges of a table as the body of a PCRE2 class: \x{41}-\x{5A}... */
static int class_body(zbuf *o, const uint32_t (*r)[2], size_t n) {
    char item[40];
    for (size_t i = 0; i < n; i++) {
        int l = r[i][0] == r[i][1] ? snprintf(item, sizeof item, "\\x{%X}", (unsigned)r[i][0])
                                   : snprintf(item, sizeof item, "\\x{%X}-\\x{%X}", (unsigned)r[i][0],
                                              (unsigned)r[i][1]);
        if (zbuf_put(o, item, (size_t)l)) return -1;
    }
    return 0;
}

/* Oniguruma pattern -> PCRE2 pattern with the same meaning: \p{L}, \p{N}, \s
 * (and \P{L}, \P{N}, \S outside classes) become explicit Unicode 16.0 classes;
 * everything else is copied. */
static int rewrite_pattern(const char *pat, char **out) {
    static const struct {
        const char *esc;
        const uint32_t (*r)[2];
        size_t n;
        int neg;
    } subst[] = {
        {"\\p{L}", uni_letter, N_RANGES(uni_letter), 0}, {"\\p{N}", uni_number, N_RANGES(uni_number), 0},
        {"\\P{L}", uni_letter, N_RANGES(uni_letter), 1}, {"\\P{N}", uni_number, N_RANGES(uni_number), 1},
        {"\\s", uni_space, N_RANGES(uni_space), 0},      {"\\S", uni_space, N_RANGES(uni_space), 1},
    };
    zbuf o = {0};
    int in_class = 0, rc = 0;
    for (const char *p = pat; *p && !rc; p++) {
        if (*p == '\\' && p[1]) {
            size_t k = 0;
            for (; k < N_RANGES(subst); k++)
                if (!strncmp(p, subst[k].esc, strlen(subst[k].esc)) && !(in_class && subst[k].neg)) break;
            if (k == N_RANGES(subst)) { /* any other escape: copy it */
                rc = zbuf_put(&o, p, 2);
                p++;
                continue;
            }
            if (!in_class) rc = zbuf_put(&o, subst[k].neg ? "[^" : "[", subst[k].neg ? 2 : 1);
            if (!rc) rc = class_body(&o, subst[k].r, subst[k].n);
            if (!rc && !in_class) rc = zbuf_putc(&o, ']');
            p += strlen(subst[k].esc) - 1;
        } else if (*p == '[' && !in_class) {
            in_class = 1;
            size_t k = 1;
            if (p[k] == '^') k++;
            if (p[k] == ']') k++; /* a leading ']' is literal */
            rc = zbuf_put(&o, p, k);
            p += k - 1;
        } else {
            if (*p == ']') in_class = 0;
            rc = zbuf_putc(&o, *p);
        }
    }
    if (!rc) rc = zbuf_putc(&o, 0);
    if (rc) {
        free(o.p);
        return -1;
    }
    *out = o.p;
    return 0;
}

/* pre_tokenizer: Split(Regex, Isolated) + ByteLevel(use_regex=false), or ByteLevel(use_regex=true). */
static int load_pretokenizer(const json_t *pt, const char *path, char **pattern) {
    if (!pt || json_is_null(pt))
        return zi_err("%s: no pre_tokenizer (expected Split regex + ByteLevel, as in Qwen2)", path);
    const json_t *items[8];
    size_t n = 0;
    const char *type = json_type_str(pt);
    if (type && !strcmp(type, "Sequence")) {
        json_t *list = json_object_get(pt, "pretokenizers");
        if (!json_is_array(list) || json_array_size(list) > 8)
            return zi_err("%s: pre_tokenizer Sequence needs \"pretokenizers\" (at most 8)", path);
        for (n = 0; n < json_array_size(list); n++) items[n] = json_array_get(list, n);
    } else
        items[n++] = pt;
    const char *pat = NULL;
    int bytelevel = 0;
    for (size_t i = 0; i < n; i++) {
        type = json_type_str(items[i]);
        if (type && !strcmp(type, "Split")) {
            const char *re = json_string_value(json_object_get(json_object_get(items[i], "pattern"), "Regex"));
            const char *beh = json_string_value(json_object_get(items[i], "behavior"));
            if (!re || pat) return zi_err("%s: pre_tokenizer Split must have one pattern.Regex", path);
            if (!beh || strcmp(beh, "Isolated") || json_is_true(json_object_get(items[i], "invert")))
                return zi_err("%s: pre_tokenizer Split: only behavior Isolated without invert is supported", path);
            pat = re;
        } else if (type && !strcmp(type, "ByteLevel")) {
            if (json_is_true(json_object_get(items[i], "add_prefix_space")))
                return zi_err("%s: ByteLevel add_prefix_space=true is not supported", path);
            if (json_is_true(json_object_get(items[i], "use_regex"))) {
                if (pat) return zi_err("%s: pre_tokenizer has two regex splits", path);
                pat = gpt2_pattern;
            }
            bytelevel = 1;
        } else
            return zi_err("%s: unsupported pre_tokenizer type \"%s\"", path, type ? type : "?");
    }
    if (!bytelevel || !pat) return zi_err("%s: pre_tokenizer must be a regex split plus ByteLevel", path);
    return rewrite_pattern(pat, pattern);
}

static int load_added(zi_tokenizer *t, const json_t *list, const char *path) {
    if (!list || json_is_null(list)) return 0;
    if (!json_is_array(list)) return zi_err("%s: added_tokens must be an array", path);
    size_t n = json_array_size(list), i;
    json_t *a;
    t->added = calloc(n ? n : 1, sizeof *t->added);
    if (!t->added) return zi_err("tokenizer: out of memory");
    json_array_foreach(list, i, a) {
        json_t *jid = json_object_get(a, "id"), *jc = json_object_get(a, "content");
        if (!json_is_integer(jid) || json_integer_value(jid) < 0 || json_integer_value(jid) >= TOK_MAX_ID)
            return zi_err("%s: added_tokens[%zu]: \"id\" must be an integer in [0, %d)", path, i, TOK_MAX_ID);
        if (!json_is_string(jc) || !json_string_length(jc))
            return zi_err("%s: added_tokens[%zu]: \"content\" must be a non-empty string", path, i);
        added_tok *d = &t->added[t->n_added++];
        d->id = (int32_t)json_integer_value(jid);
        d->off = (uint32_t)t->strs.n;
        d->len = (uint32_t)json_string_length(jc);
        if (zbuf_put(&t->strs, json_string_value(jc), d->len) || zbuf_putc(&t->strs, 0)) return -1;
        d->normalized = json_is_true(json_object_get(a, "normalized"));
        d->lstrip = json_is_true(json_object_get(a, "lstrip"));
        d->rstrip = json_is_true(json_object_get(a, "rstrip"));
        d->single_word = json_is_true(json_object_get(a, "single_word"));
    }
    /* longest first, so the first match at a position is the longest one */
    for (int x = 1; x < t->n_added; x++)
        for (int y = x; y > 0 && t->added[y].len > t->added[y - 1].len; y--) {
            added_tok tmp = t->added[y];
            t->added[y] = t->added[y - 1];
            t->added[y - 1] = tmp;
        }
    for (int x = 0; x < t->n_added; x++) {
        unsigned char c0 = (unsigned char)t->strs.p[t->added[x].off];
        if (t->added[x].normalized) {
            t->first_norm[c0] = 1;
            t->has_norm_added = 1;
        } else
            t->first_raw[c0] = 1;
    }
    return 0;
}

static int load_model_options(zi_tokenizer *t, const json_t *m, const char *path) {
    const char *type = json_type_str(m);
    if (type && strcmp(type, "BPE")) return zi_err("%s: model type \"%s\" is not BPE", path, type);
    static const char *const empty_keys[] = {"continuing_subword_prefix", "end_of_word_suffix"};
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(m, empty_keys[i]);
        if (v && !json_is_null(v) && !(json_is_string(v) && !json_string_length(v)))
            return zi_err("%s: model.%s is not supported", path, empty_keys[i]);
    }
    json_t *d = json_object_get(m, "dropout");
    if (d && !json_is_null(d) && !(json_is_number(d) && json_number_value(d) == 0))
        return zi_err("%s: BPE dropout is not supported", path);
    t->ignore_merges = json_is_true(json_object_get(m, "ignore_merges"));
    return 0;
}

/* The tables are ~4 MB each and filled in random order: hash PF entries
 * ahead and prefetch their slots so the cache misses overlap. */
enum { PF = 16 };

/* model.vocab string -> id */
static int load_vocab_map(loader *L, const char *path) {
    zi_tokenizer *t = L->t;
    uint32_t h[PF];
    if (smap_init(&t->vocab, L->n_vocab)) return -1;
    for (size_t i = 0; i < L->n_vocab + PF; i++) {
        if (i >= PF) { /* insert entry i - PF */
            const vocab_item *v = &L->vocab[i - PF];
            uint32_t hv = h[i % PF];
            str_slot *s = smap_find(&t->vocab, t->strs.p, t->strs.p + v->off, v->len, hv);
            if (s->h) return zi_err("%s: duplicate vocab token \"%s\"", path, t->strs.p + v->off);
            *s = (str_slot){hv, v->off, v->len, v->id};
            t->vocab.n++;
        }
        if (i < L->n_vocab) { /* hash entry i */
            h[i % PF] = hash_bytes(t->strs.p + L->vocab[i].off, L->vocab[i].len);
            PREFETCH(&t->vocab.slot[h[i % PF] & t->vocab.mask]);
        }
    }
    return 0;
}

/* merges: (a, b) -> (rank = position, id of a+b). A later duplicate pair
 * overwrites an earlier one, as HF's HashMap collect does. */
static int load_merge_table(loader *L, const char *path) {
    zi_tokenizer *t = L->t;
    size_t n = L->n_merges, cap = table_cap(n);
    int32_t *res = malloc(sizeof *res * 3 * (n ? n : 1)); /* a, b, a+b ids */
    t->merges.slot = malloc(cap * sizeof *t->merges.slot);
    if (!res || !t->merges.slot) {
        free(res);
        return zi_err("tokenizer: out of memory");
    }
    memset(t->merges.slot, 0xFF, cap * sizeof *t->merges.slot); /* key UINT64_MAX = empty */
    t->merges.mask = cap - 1;
    uint32_t h[PF][3];
    for (size_t i = 0; i < n + PF; i++) {
        if (i >= PF) { /* resolve merge i - PF */
            size_t r = i - PF;
            const merge_item *m = &L->merges[r];
            const char *a = L->mstr.p + m->a_off, *b = L->mstr.p + m->b_off;
            const uint32_t *hr = h[r % PF];
            const str_slot *sa = smap_find(&t->vocab, t->strs.p, a, m->a_len, hr[0]);
            const str_slot *sb = smap_find(&t->vocab, t->strs.p, b, m->b_len, hr[1]);
            const str_slot *sc = smap_find2(&t->vocab, t->strs.p, a, m->a_len, b, m->b_len, hr[2]);
            if (!sa->h || !sb->h || !sc->h) {
                if (!sa->h || !sb->h)
                    zi_err("%s: merge %zu (\"%.*s %.*s\") uses token \"%.*s\" that is not in model.vocab", path, r,
                           (int)m->a_len, a, (int)m->b_len, b, (int)(!sa->h ? m->a_len : m->b_len), !sa->h ? a : b);
                else
                    zi_err("%s: merge %zu (\"%.*s %.*s\") gives token \"%.*s%.*s\" that is not in model.vocab", path,
                           r, (int)m->a_len, a, (int)m->b_len, b, (int)m->a_len, a, (int)m->b_len, b);
                free(res);
                return -1;
            }
            res[3 * r] = sa->val;
            res[3 * r + 1] = sb->val;
            res[3 * r + 2] = sc->val;
        }
        if (i < n) { /* hash merge i */
            const merge_item *m = &L->merges[i];
            uint64_t fa = fnv_update(FNV_INIT, L->mstr.p + m->a_off, m->a_len);
            uint32_t *hi = h[i % PF];
            hi[0] = hash_final(fa);
            hi[1] = hash_bytes(L->mstr.p + m->b_off, m->b_len);
            hi[2] = hash_final(fnv_update(fa, L->mstr.p + m->b_off, m->b_len));
            for (int k = 0; k < 3; k++) PREFETCH(&t->vocab.slot[hi[k] & t->vocab.mask]);
        }
    }
    for (size_t i = 0; i < n + PF; i++) {
        if (i < n) PREFETCH(&t->merges.slot[hash_u64(merge_key(res[3 * i], res[3 * i + 1])) & t->merges.mask]);
        if (i < PF) continue;
        size_t r = i - PF;
        uint64_t key = merge_key(res[3 * r], res[3 * r + 1]);
        *mmap_find(&t->merges, key) = (merge_slot){key, (int32_t)r, res[3 * r + 2]};
    }
    free(res);
    return 0;
}

static int load_tables(loader *L, const char *path) {
    zi_tokenizer *t = L->t;
    int32_t n_ids = 0;
    for (size_t i = 0; i < L->n_vocab; i++)
        if (L->vocab[i].id >= n_ids) n_ids = L->vocab[i].id + 1;
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].id >= n_ids) n_ids = t->added[i].id + 1;
    t->n_ids = n_ids;
    t->ent = calloc(n_ids ? (size_t)n_ids : 1, sizeof *t->ent);
    if (!t->ent) return zi_err("tokenizer: out of memory");
    /* vocab strings -> decoded bytes; a token with characters outside the
     * byte alphabet decodes to its own UTF-8 (as HF's ByteLevel decoder does) */
    if (zbuf_reserve(&t->strs, t->strs.n + 1)) return -1; /* decoded bytes are never longer */
    for (size_t i = 0; i < L->n_vocab; i++) {
        vocab_item *v = &L->vocab[i];
        tok_entry *e = &t->ent[v->id];
        if (e->kind) return zi_err("%s: vocab id %d is used twice", path, v->id);
        e->kind = 1;
        e->str_off = v->off;
        e->str_len = v->len;
        const unsigned char *s = (const unsigned char *)t->strs.p + v->off;
        char tmp[1024], *dst = v->len <= sizeof tmp ? tmp : NULL;
        size_t k = 0, nb = 0;
        int ok = dst != NULL;
        while (ok && k < v->len) {
            uint32_t cp;
            k += utf8_get(s + k, &cp);
            if (cp < 324 && t->u2b[cp] >= 0)
                dst[nb++] = (char)t->u2b[cp];
            else
                ok = 0;
        }
        if (!ok) { /* identical to the string itself */
            e->bytes_off = v->off;
            e->bytes_len = v->len;
            continue;
        }
        e->bytes_off = (uint32_t)t->strs.n;
        e->bytes_len = (uint32_t)nb;
        if (zbuf_put(&t->strs, tmp, nb)) return -1;
    }
    if (load_vocab_map(L, path)) return -1;
    for (int i = 0; i < t->n_added; i++) {
        tok_entry *e = &t->ent[t->added[i].id];
        e->kind = 2;
        e->str_off = e->bytes_off = t->added[i].off;
        e->str_len = e->bytes_len = t->added[i].len;
    }
    /* single-byte symbols */
    for (int b = 0; b < 256; b++) {
        char s[4];
        size_t l = utf8_put(s, t->b2u[b]);
        str_slot *sl = smap_find(&t->vocab, t->strs.p, s, l, hash_bytes(s, l));
        if (!sl->h) return zi_err("%s: model.vocab has no token for byte 0x%02x (\"%.*s\")", path, b, (int)l, s);
        t->byte_id[b] = sl->val;
    }
    return load_merge_table(L, path);
}

static int load_regex(zi_tokenizer *t, const char *pattern, const char *path) {
    int err;
    PCRE2_SIZE eoff;
    t->re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP, &err, &eoff, NULL);
    if (!t->re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return zi_err("%s: cannot compile the pre_tokenizer regex at offset %zu: %s", path, (size_t)eoff,
                      (char *)msg);
    }
    pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
    return 0;
}

/* Map the whole file read-only (pages populated up front). */
static const char *map_file(const char *path, size_t *n) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        zi_err("cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    void *p = NULL;
    if (fstat(fd, &sb) != 0)
        zi_err("cannot read %s: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode))
        zi_err("%s: not a regular file", path);
    else if (sb.st_size == 0)
        zi_err("%s: file is empty", path);
    else if (sb.st_size > INT32_MAX)
        zi_err("%s: file too large for a tokenizer.json (%lld bytes)", path, (long long)sb.st_size);
    else {
        int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
        flags |= MAP_POPULATE;
#endif
        p = mmap(NULL, (size_t)sb.st_size, PROT_READ, flags, fd, 0);
        if (p == MAP_FAILED) {
            zi_err("cannot map %s: %s", path, strerror(errno));
            p = NULL;
        }
    }
    close(fd);
    *n = p ? (size_t)sb.st_size : 0;
    return p;
}

void zi_tokenizer_free(zi_tokenizer *t) {
    if (!t) return;
    free(t->strs.p);
    free(t->vocab.slot);
    free(t->merges.slot);
    free(t->ent);
    free(t->added);
    pcre2_code_free(t->re);
    free(t);
}

int zi_tokenizer_load(zi_tokenizer **out, const char *path) {
    *out = NULL;
    size_t n;
    const char *buf = map_file(path, &n);
    if (!buf) return -1;
    zi_tokenizer *t = calloc(1, sizeof *t);
    loader L = {0};
    char *pattern = NULL;
    int rc = -1;
    if (!t) {
        zi_err("tokenizer: out of memory");
        goto done;
    }
    L.t = t;
    L.j = (jscan){buf, buf, buf + n, path, {0}};
    bytelevel_tables(t->b2u, t->u2b);
    /* initial arena sizes, enough for the Qwen file without regrowth */
    if (zbuf_reserve(&t->strs, n / 2 + 4096) || zbuf_reserve(&L.mstr, n / 4 + 4096)) goto done;
    if (load_json(&L)) goto done;
    if (!L.model || !L.has_vocab || !L.has_merges) {
        zi_err("%s: %s is missing", path, !L.model ? "\"model\"" : !L.has_vocab ? "model.vocab" : "model.merges");
        goto done;
    }
    if (load_model_options(t, L.model, path) ||
        load_normalizer(t, json_object_get(L.top, "normalizer"), path) ||
        load_pretokenizer(json_object_get(L.top, "pre_tokenizer"), path, &pattern) ||
        load_added(t, json_object_get(L.top, "added_tokens"), path))
        goto done;
    if (load_tables(&L, path) || load_regex(t, pattern, path)) goto done;
    rc = 0;
done:
    free(pattern);
    free(L.j.scratch.p);
    free(L.vocab);
    free(L.merges);
    free(L.mstr.p);
    json_decref(L.top);
    json_decref(L.model);
    munmap((void *)buf, n);
    if (rc) {
        zi_tokenizer_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

/* ------------------------------------------------------------------- lookup */

const char *zi_tokenizer_token_str(const zi_tokenizer *t, int32_t id) {
    if (!t || id < 0 || id >= t->n_ids || !t->ent[id].kind) return NULL;
    return t->strs.p + t->ent[id].str_off;
}

int32_t zi_tokenizer_token_id(const zi_tokenizer *t, const char *str) {
    size_t l = strlen(str);
    for (int i = 0; i < t->n_added; i++)
        if (t->added[i].len == l && !memcmp(t->strs.p + t->added[i].off, str, l)) return t->added[i].id;
    const str_slot *s = smap_find(&t->vocab, t->strs.p, str, l, hash_bytes(str, l));
    return s->h ? s->val : -1;
}

int32_t zi_tokenizer_vocab_size(const zi_tokenizer *t) { return t->n_ids; }

/* ------------------------------------------------------------------- encode */

typedef struct {
    int32_t id, prev, next; /* id < 0: merged away */
} bpe_sym;

typedef struct {
    int32_t rank, pos, new_id;
} bpe_cand;

typedef struct {
    const zi_tokenizer *t;
    ibuf out;
    str_map cache;  /* piece bytes -> offset into cache_ids */
    zbuf cache_keys;
    ibuf cache_ids; /* [count, ids...] per cached piece */
    bpe_sym *sym;
    bpe_cand *heap;
    size_t sym_cap, heap_n, heap_cap;
    zbuf tmp, norm;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jstack;
} enc_ctx;

static int cand_less(const bpe_cand *a, const bpe_cand *b) {
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

static int heap_push(enc_ctx *c, bpe_cand v) {
    if (c->heap_n == c->heap_cap) {
        size_t cap = c->heap_cap ? c->heap_cap * 2 : 64;
        bpe_cand *h = realloc(c->heap, cap * sizeof *h);
        if (!h) return zi_err("tokenizer: out of memory");
        c->heap = h;
        c->heap_cap = cap;
    }
    size_t i = c->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&v, &c->heap[p])) break;
        c->heap[i] = c->heap[p];
        i = p;
    }
    c->heap[i] = v;
    return 0;
}

static bpe_cand heap_pop(enc_ctx *c) {
    bpe_cand top = c->heap[0], last = c->heap[--c->heap_n];
    size_t i = 0, n = c->heap_n;
    for (;;) {
        size_t l = 2 * i + 1, m = i;
        const bpe_cand *best = &last;
        if (l < n && cand_less(&c->heap[l], best)) m = l, best = &c->heap[l];
        if (l + 1 < n && cand_less(&c->heap[l + 1], best)) m = l + 1;
        if (m == i) break;
        c->heap[i] = c->heap[m];
        i = m;
    }
    if (n) c->heap[i] = last;
    return top;
}

static int bpe_push_pair(enc_ctx *c, int32_t left) {
    int32_t right = c->sym[left].next;
    if (right < 0) return 0;
    const merge_slot *m = mmap_find(&c->t->merges, merge_key(c->sym[left].id, c->sym[right].id));
    if (m->key == UINT64_MAX) return 0;
    return heap_push(c, (bpe_cand){m->rank, left, m->new_id});
}

/* BPE over the bytes of one piece; appends the ids to c->out. Same procedure
 * as HF's Word::merge_all: repeatedly merge the lowest-rank pair (leftmost on
 * ties); a queued pair is stale when its left symbol is gone or the pair now
 * yields another token. */
static int bpe_piece(enc_ctx *c, const unsigned char *w, size_t n) {
    const zi_tokenizer *t = c->t;
    if (n > INT32_MAX / 2) return zi_err("tokenizer: pre-token of %zu bytes is too long", n);
    if (t->ignore_merges) { /* whole piece in the vocab: take it as is */
        c->tmp.n = 0;
        if (zbuf_reserve(&c->tmp, n * 2)) return -1;
        for (size_t i = 0; i < n; i++) c->tmp.n += utf8_put(c->tmp.p + c->tmp.n, t->b2u[w[i]]);
        const str_slot *s = smap_find(&t->vocab, t->strs.p, c->tmp.p, c->tmp.n, hash_bytes(c->tmp.p, c->tmp.n));
        if (s->h) return ibuf_push(&c->out, s->val);
    }
    if (n > c->sym_cap) {
        bpe_sym *s = realloc(c->sym, n * sizeof *s);
        if (!s) return zi_err("tokenizer: out of memory");
        c->sym = s;
        c->sym_cap = n;
    }
    for (size_t i = 0; i < n; i++)
        c->sym[i] = (bpe_sym){t->byte_id[w[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1};
    c->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++)
        if (bpe_push_pair(c, (int32_t)i)) return -1;
    while (c->heap_n) {
        bpe_cand top = heap_pop(c);
        bpe_sym *l = &c->sym[top.pos];
        if (l->id < 0 || l->next < 0) continue;
        bpe_sym *r = &c->sym[l->next];
        const merge_slot *m = mmap_find(&t->merges, merge_key(l->id, r->id));
        if (m->key == UINT64_MAX || m->new_id != top.new_id) continue;
        l->id = top.new_id; /* [l r] -> l */
        r->id = -1;
        l->next = r->next;
        if (r->next >= 0) c->sym[r->next].prev = top.pos;
        if (l->prev >= 0 && bpe_push_pair(c, l->prev)) return -1;
        if (bpe_push_pair(c, top.pos)) return -1;
    }
    for (int32_t i = 0; i >= 0; i = c->sym[i].next)
        if (ibuf_push(&c->out, c->sym[i].id)) return -1;
    return 0;
}

/* BPE with the per-call cache. */
static int encode_piece(enc_ctx *c, const unsigned char *w, size_t n) {
    if (n == 1) return ibuf_push(&c->out, c->t->byte_id[w[0]]);
    if (n > TOK_CACHE_MAX_WORD) return bpe_piece(c, w, n);
    uint64_t h = hash_bytes(w, n);
    str_slot *s = smap_find(&c->cache, c->cache_keys.p, w, n, h);
    if (s->h) {
        const int32_t *v = c->cache_ids.p + s->val;
        for (int32_t i = 1; i <= v[0]; i++)
            if (ibuf_push(&c->out, v[i])) return -1;
        return 0;
    }
    size_t before = c->out.n;
    if (bpe_piece(c, w, n)) return -1;
    /* remember the result */
    size_t cnt = c->out.n - before, off = c->cache_ids.n, koff = c->cache_keys.n;
    if (c->cache_ids.n + cnt + 1 > INT32_MAX || koff + n > UINT32_MAX) return 0; /* cache full */
    if (ibuf_push(&c->cache_ids, (int32_t)cnt)) return -1;
    for (size_t i = 0; i < cnt; i++)
        if (ibuf_push(&c->cache_ids, c->out.p[before + i])) return -1;
    if (zbuf_put(&c->cache_keys, w, n) || smap_grow(&c->cache)) return -1;
    s = smap_find(&c->cache, c->cache_keys.p, w, n, h);
    *s = (str_slot){h, (uint32_t)koff, (uint32_t)n, (int32_t)off};
    c->cache.n++;
    return 0;
}

/* Pre-tokenizer split ("isolated": both matches and the gaps are pieces). */
static int encode_pretok(enc_ctx *c, const char *s, size_t n) {
    size_t pos = 0, off = 0;
    while (off < n) {
        int rc = pcre2_match(c->t->re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT && !c->jstack) { /* retry once with a large JIT stack */
            c->mctx = pcre2_match_context_create(NULL);
            c->jstack = pcre2_jit_stack_create(64 * 1024, 64 * 1024 * 1024, NULL);
            if (!c->mctx || !c->jstack) return zi_err("tokenizer: out of memory");
            pcre2_jit_stack_assign(c->mctx, NULL, c->jstack);
            continue;
        }
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            return zi_err("tokenizer: pre_tokenizer regex failed at byte %zu: %s", off, (char *)msg);
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(c->md);
        size_t ms = ov[0], me = ov[1];
        if (ms > pos && encode_piece(c, (const unsigned char *)s + pos, ms - pos)) return -1;
        if (me == ms) { /* empty match: step over one character, it stays in the gap */
            uint32_t cp;
            off = ms + utf8_get((const unsigned char *)s + ms, &cp);
            pos = ms;
            continue;
        }
        if (encode_piece(c, (const unsigned char *)s + ms, me - ms)) return -1;
        pos = off = me;
    }
    if (pos < n && encode_piece(c, (const unsigned char *)s + pos, n - pos)) return -1;
    return 0;
}

/* Find the next added token of one class (normalized or not) in s[from..n):
 * leftmost, longest at that position. Returns its index or -1; [*ms, *me) is
 * the span it consumes (extended over whitespace for lstrip/rstrip). */
static int find_added(const zi_tokenizer *t, const unsigned char *s, size_t n, size_t from, int normalized,
                      size_t *ms, size_t *me) {
    const uint8_t *first = normalized ? t->first_norm : t->first_raw;
    for (size_t i = from; i < n; i++) {
        if (!first[s[i]]) continue;
        for (int k = 0; k < t->n_added; k++) {
            const added_tok *a = &t->added[k];
            if (a->normalized != normalized || a->len > n - i || memcmp(s + i, t->strs.p + a->off, a->len))
                continue;
            size_t b = i, e = i + a->len;
            if (a->single_word) { /* no word character right before or after */
                uint32_t cp;
                int before = 0, after = 0;
                if (b > 0) {
                    size_t p = b - 1;
                    while (p > 0 && (s[p] & 0xC0) == 0x80) p--;
                    utf8_get(s + p, &cp);
                    before = cp_is_word(cp);
                }
                if (e < n) {
                    utf8_get(s + e, &cp);
                    after = cp_is_word(cp);
                }
                if (before || after) continue;
            }
            if (a->lstrip)
                while (b > from) {
                    size_t p = b - 1;
                    uint32_t cp;
                    while (p > from && (s[p] & 0xC0) == 0x80) p--;
                    utf8_get(s + p, &cp);
                    if (!cp_is_space(cp)) break;
                    b = p;
                }
            if (a->rstrip)
                while (e < n) {
                    uint32_t cp;
                    size_t l = utf8_get(s + e, &cp);
                    if (!cp_is_space(cp)) break;
                    e += l;
                }
            *ms = b;
            *me = e;
            return k;
        }
    }
    return -1;
}

/* NFC-normalized text of one segment, then normalized added tokens, then the regex. */
/* NFC of s[0..n) (no nfc_barrier code point inside) appended to out. */
static int nfc_part(zbuf *out, const char *s, size_t n) {
    int ascii = 1;
    for (size_t i = 0; i < n && ascii; i++) ascii = (unsigned char)s[i] < 0x80;
    if (ascii) return zbuf_put(out, s, n); /* ASCII is NFC */
    utf8proc_uint8_t *norm = NULL;
    utf8proc_ssize_t r =
        utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &norm, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (r < 0) return zi_err("tokenizer: NFC normalization failed: %s", utf8proc_errmsg(r));
    int rc = zbuf_put(out, norm, (size_t)r);
    free(norm);
    return rc;
}

/* NFC as HF computes it: nfc_barrier code points are copied as they are and
 * split the text into independently normalized parts (for HF's Unicode 9.0
 * data they are starters that neither decompose nor compose, so nothing
 * reorders or composes across them). */
static int nfc_append(zbuf *out, const char *s, size_t n) {
    size_t start = 0, i = 0;
    while (i < n) {
        if ((unsigned char)s[i] < 0xDF) { /* below U+07C0: never a barrier */
            i++;
            continue;
        }
        uint32_t cp;
        size_t l = utf8_get((const unsigned char *)s + i, &cp);
        if (in_ranges(nfc_barrier, N_RANGES(nfc_barrier), cp)) {
            if (nfc_part(out, s + start, i - start) || zbuf_put(out, s + i, l)) return -1;
            start = i + l;
        }
        i += l;
    }
    return nfc_part(out, s + start, n - start);
}

/* NFC-normalized text of one segment, then normalized added tokens, then the regex. */
static int encode_segment(enc_ctx *c, const char *s, size_t n) {
    const zi_tokenizer *t = c->t;
    if (!n) return 0;
    if (t->nfc) {
        c->norm.n = 0;
        if (nfc_append(&c->norm, s, n)) return -1;
        s = c->norm.p;
        n = c->norm.n;
    }
    int rc = 0;
    if (t->has_norm_added) {
        size_t from = 0, ms, me;
        int k;
        while (!rc && (k = find_added(t, (const unsigned char *)s, n, from, 1, &ms, &me)) >= 0) {
            rc = encode_pretok(c, s + from, ms - from) || ibuf_push(&c->out, t->added[k].id);
            from = me;
        }
        if (!rc) rc = encode_pretok(c, s + from, n - from);
    } else
        rc = encode_pretok(c, s, n);
    return rc ? -1 : 0;
}

static void enc_free(enc_ctx *c) {
    free(c->out.p);
    free(c->cache.slot);
    free(c->cache_keys.p);
    free(c->cache_ids.p);
    free(c->sym);
    free(c->heap);
    free(c->tmp.p);
    free(c->norm.p);
    pcre2_match_data_free(c->md);
    pcre2_match_context_free(c->mctx);
    if (c->jstack) pcre2_jit_stack_free(c->jstack);
}

static int encode_text(const zi_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n_ids,
                       const char *what, size_t what_off) {
    *ids = NULL;
    *n_ids = 0;
    if (!t) return zi_err("tokenizer: not loaded");
    if (len && !text) return zi_err("tokenizer: NULL text");
    if (len > INT_MAX / 2) return zi_err("tokenizer: %s of %zu bytes is too long", what, len);
    size_t bad = utf8_valid_upto((const unsigned char *)text, len);
    if (bad != len) return zi_err("%s is not valid UTF-8 at byte %zu", what, bad - what_off);
    if (!len) return 0;
    enc_ctx c = {0};
    c.t = t;
    int rc = -1;
    c.md = pcre2_match_data_create_from_pattern(t->re, NULL);
    if (!c.md || smap_init(&c.cache, 256)) {
        if (!c.md) zi_err("tokenizer: out of memory");
        goto done;
    }
    size_t from = 0, ms, me;
    int k;
    while ((k = find_added(t, (const unsigned char *)text, len, from, 0, &ms, &me)) >= 0) {
        if (encode_segment(&c, text + from, ms - from) || ibuf_push(&c.out, t->added[k].id)) goto done;
        from = me;
    }
    if (encode_segment(&c, text + from, len - from)) goto done;
    if (c.out.n > INT_MAX) {
        zi_err("tokenizer: too many tokens");
        goto done;
    }
    *ids = c.out.p;
    *n_ids = (int)c.out.n;
    c.out.p = NULL;
    rc = 0;
done:
    enc_free(&c);
    return rc;
}

int zi_tokenizer_encode(const zi_tokenizer *t, const char *text, size_t len, int32_t **ids, int *n_ids) {
    return encode_text(t, text, len, ids, n_ids, "text", 0);
}

int zi_tokenizer_encode_prompt(const zi_tokenizer *t, const char *prompt, int max_len, int32_t **ids,
                               int *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!prompt) return zi_err("tokenizer: NULL prompt");
    size_t pl = strlen(prompt), a = strlen(ZI_PROMPT_PREFIX), b = strlen(ZI_PROMPT_SUFFIX);
    size_t bad = utf8_valid_upto((const unsigned char *)prompt, pl);
    if (bad != pl) return zi_err("prompt is not valid UTF-8 at byte %zu", bad);
    char *s = malloc(a + pl + b + 1);
    if (!s) return zi_err("tokenizer: out of memory");
    memcpy(s, ZI_PROMPT_PREFIX, a);
    memcpy(s + a, prompt, pl);
    memcpy(s + a + pl, ZI_PROMPT_SUFFIX, b + 1);
    int rc = encode_text(t, s, a + pl + b, ids, n_ids, "prompt", a);
    free(s);
    if (rc) return -1;
    if (max_len > 0 && *n_ids > max_len) *n_ids = max_len; /* right truncation */
    return 0;
}

/* ------------------------------------------------------------------- decode */

char *zi_tokenizer_decode_len(const zi_tokenizer *t, const int32_t *ids, int n, size_t *len) {
    zbuf raw = {0}, out = {0};
    if (len) *len = 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= t->n_ids || !t->ent[ids[i]].kind) {
            zi_err("tokenizer: cannot decode unknown token id %d (position %d)", ids[i], i);
            free(raw.p);
            return NULL;
        }
        const tok_entry *e = &t->ent[ids[i]];
        if (zbuf_put(&raw, t->strs.p + e->bytes_off, e->bytes_len)) {
            free(raw.p);
            return NULL;
        }
    }
    /* lossy UTF-8: each maximal ill-formed subsequence -> U+FFFD */
    if (zbuf_reserve(&out, raw.n * 3 + 1)) {
        free(raw.p);
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)raw.p;
    for (size_t i = 0, bad; i < raw.n;) {
        size_t l = s[i] < 0x80 ? 1 : utf8_seq(s + i, raw.n - i, &bad);
        if (l) {
            memcpy(out.p + out.n, s + i, l);
            out.n += l;
            i += l;
        } else {
            memcpy(out.p + out.n, "\xEF\xBF\xBD", 3);
            out.n += 3;
            i += bad;
        }
    }
    out.p[out.n] = 0;
    free(raw.p);
    if (len) *len = out.n;
    return out.p;
}

char *zi_tokenizer_decode(const zi_tokenizer *t, const int32_t *ids, int n) {
    return zi_tokenizer_decode_len(t, ids, n, NULL);
}
