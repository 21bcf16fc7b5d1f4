/*
 * json_canonical.h — the canonical proto3 JSON texts of the JSON tests'
 * messages (tests/json_types.proto): AllTypes with every field kind set,
 * WellKnown with every well-known type.  json_test checks they are
 * canonical (decode then encode gives them back); fuzz_json starts from
 * them.  Literals, so each test makes what it needs of them.
 */
#ifndef ORPC_TESTS_JSON_CANONICAL_H
#define ORPC_TESTS_JSON_CANONICAL_H

#define ORPC_TEST_ALL_JSON                                                     \
    "{\"fInt32\":-2147483648,\"fInt64\":\"-9223372036854775808\","             \
    "\"fUint32\":4294967295,\"fUint64\":\"18446744073709551615\","             \
    "\"fSint32\":-7,\"fSint64\":\"9007199254740993\",\"fFixed32\":123,"        \
    "\"fFixed64\":\"1152921504606846976\",\"fSfixed32\":-1,"                   \
    "\"fSfixed64\":\"-4611686018427387904\",\"fFloat\":0.1,"                   \
    "\"fDouble\":0.3333333333333333,\"fBool\":true,"                           \
    "\"fString\":\"h\xc3\xa9llo \\\"q\\\" \\\\ \\n\\t\\u0001 "                 \
    "\xf0\x9f\x98\x80\","                                                      \
    "\"fBytes\":\"AP8Q\",\"fEnum\":\"COLOR_RED\","                             \
    "\"fNested\":{\"a\":1,\"b\":\"n\",\"child\":{\"child\":{\"a\":3}}},"       \
    "\"rInt32\":[0,-1,2147483647],\"rInt64\":[\"0\",\"9223372036854775807\"]," \
    "\"rUint32\":[0,1],\"rUint64\":[\"18446744073709551615\"],"                \
    "\"rSint32\":[-5],\"rSint64\":[\"-1\"],\"rFixed32\":[7],"                  \
    "\"rFixed64\":[\"8\"],\"rSfixed32\":[-9],\"rSfixed64\":[\"-10\"],"         \
    "\"rFloat\":[1.5,\"Infinity\",\"-Infinity\",3.4028235e+38,1e-45,\"NaN\"]," \
    "\"rDouble\":[\"NaN\",1e+300,-2.5e-308,123456789.125,5],"                  \
    "\"rBool\":[true,false],\"rString\":[\"\",\"a\"],"                         \
    "\"rBytes\":[\"\",\"//4=\",\"YWJj\"],"                                     \
    "\"rEnum\":[\"COLOR_BLUE\",\"COLOR_UNSPECIFIED\",99],"                     \
    "\"rNested\":[{\"a\":1},{},{\"b\":\"x\",\"child\":{\"a\":2}}],"            \
    "\"mStringInt32\":{\"a\":1,\"\":0,\"\xc3\xa9 k\":-3},"                     \
    "\"mInt32String\":{\"-1\":\"m\",\"0\":\"\"},"                              \
    "\"mInt64Nested\":{\"-9223372036854775808\":{\"a\":1},\"5\":{}},"          \
    "\"mUint32Double\":{\"4294967295\":0.5},"                                  \
    "\"mUint64Enum\":{\"18446744073709551615\":\"COLOR_GREEN\"},"              \
    "\"mSint32Bytes\":{\"-2\":\"AAE=\"},\"mSint64Bool\":{\"-3\":true},"        \
    "\"mFixed32Int64\":{\"4\":\"-4\"},"                                        \
    "\"mFixed64Uint64\":{\"5\":\"18446744073709551615\"},"                     \
    "\"mSfixed32Float\":{\"-6\":-1.25},\"mSfixed64String\":{\"-7\":\"s\"},"    \
    "\"mBoolString\":{\"true\":\"t\",\"false\":\"f\"},"                        \
    "\"mStringValue\":{\"n\":null,\"l\":[1.5,\"x\",{\"k\":false}]},"           \
    "\"oString\":\"one\",\"optInt32\":0,\"customName\":42}"

#define ORPC_TEST_WKT_JSON                                                     \
    "{\"ts\":\"2023-11-14T22:13:20.123Z\",\"dur\":\"-3.000000500s\","          \
    "\"wDouble\":0,\"wFloat\":2.5,\"wInt64\":\"-9223372036854775808\","        \
    "\"wUint64\":\"18446744073709551615\",\"wInt32\":0,"                       \
    "\"wUint32\":4294967295,\"wBool\":false,\"wString\":\"w\","                \
    "\"wBytes\":\"AQIDBA==\","                                                 \
    "\"st\":{\"a\":1,\"b\":[true,null,\"x\",{\"c\":-2.5}],\"d\":{}},"          \
    "\"val\":[\"in a list\"],\"lv\":[{},null],"                                \
    "\"fm\":\"fInt32,fNested.child.a,rString\",\"empty\":{},"                  \
    "\"any\":{\"@type\":\"type.googleapis.com/orpc.test.json.Nested\","        \
    "\"a\":7,\"b\":\"packed\"},"                                               \
    "\"rTs\":[\"0001-01-01T00:00:00Z\",\"9999-12-31T23:59:59.999999999Z\","    \
    "\"1970-01-01T00:00:00.000001Z\"],"                                        \
    "\"rWInt32\":[5,0],\"rVal\":[true,null,-0.125],"                           \
    "\"rAny\":[{\"@type\":\"type.googleapis.com/google.protobuf.Timestamp\","  \
    "\"value\":\"1970-01-02T00:00:00Z\"},"                                     \
    "{\"@type\":\"type.googleapis.com/google.protobuf.Duration\","             \
    "\"value\":\"1.500s\"},"                                                   \
    "{\"@type\":\"type.googleapis.com/google.protobuf.StringValue\","          \
    "\"value\":\"wrapped\"},"                                                  \
    "{\"@type\":\"type.googleapis.com/google.protobuf.Value\","                \
    "\"value\":{\"k\":[1]}},"                                                  \
    "{\"@type\":\"type.googleapis.com/google.protobuf.Empty\"},"               \
    "{\"@type\":\"type.googleapis.com/orpc.test.json.AllTypes\","              \
    "\"fInt64\":\"5\",\"mBoolString\":{\"true\":\"y\"},\"oString\":\"x\"},"    \
    "{}],"                                                                     \
    "\"mDur\":{\"zero\":\"0s\",\"long\":\"315576000000s\"},"                   \
    "\"mWString\":{\"k\":\"v\"},\"all\":{\"fInt32\":1}}"

#endif /* ORPC_TESTS_JSON_CANONICAL_H */
